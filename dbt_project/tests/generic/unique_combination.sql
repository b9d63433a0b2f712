{#- A composite key: no two rows share these columns' values (nulls compare equal). -#}
{% test unique_combination(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(',\n    ') }},
    count(*) as rows_with_this_key,
from {{ model }}
group by all
having count(*) > 1

{% endtest %}
