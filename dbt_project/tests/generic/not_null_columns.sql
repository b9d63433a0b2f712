{#- None of these columns holds a null. One scan of the model for all of them (a not_null test
    per column scanned it once per column: at 10M rows that, and dbt's per-test overhead, was
    most of a nightly run's test time). Fails with one row per column that has nulls. -#}
{% test not_null_columns(model, columns) %}

with null_counts as (

    select
        {%- for column in columns %}
        count(*) filter (where "{{ column }}" is null) as "{{ column }}"{{ "," if not loop.last }}
        {%- endfor %}
    from {{ model }}

)

select column_name, null_rows
from (
    unpivot null_counts on columns(*) into name column_name value null_rows
)
where null_rows > 0

{% endtest %}
