{#- How far an append-only model's `unique_appended` test has already vouched for its column:
    after a run in which the test passed, the model's highest seq, its row count and the sum
    of the column's value hashes are recorded in incremental_state.unique_marks (on-run-end).
    A later test then looks only at rows above that seq. The mark is ignored (the whole table
    is checked) on a --full-refresh, and when the rows up to it no longer have that count and
    that sum: the table was rebuilt, or rows were added, removed or changed below the mark, so
    they may not be the values that were found unique. -#}

{% macro unique_mark(model, column_name, seq_column) -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set marks = adapter.get_relation(
        database=model.database, schema='incremental_state', identifier='unique_marks'
    ) -%}
    {%- if marks is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "with mark as (select * from " ~ marks ~ " where model = '" ~ model.identifier
        ~ "' and column_name = '" ~ column_name ~ "'), "
        ~ "now as (select count(*) as row_count, coalesce(sum(hash(" ~ column_name ~ ")), 0)"
        ~ " as value_hash_sum from " ~ model ~ " where " ~ seq_column
        ~ " <= (select high_water from mark)) "
        ~ "select mark.high_water from mark, now where mark.row_count = now.row_count"
        ~ " and mark.value_hash_sum = now.value_hash_sum"
    ) -%}
    {%- if found.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}

{#- on-run-end: the marks of the unique_appended tests that ran and passed. -#}
{% macro record_unique_marks(results) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set passed = [] -%}
    {%- for result in results if result.node.resource_type == 'test'
        and result.node.test_metadata is defined and result.node.test_metadata is not none
        and result.node.test_metadata.name == 'unique_appended' and result.status == 'pass' -%}
        {%- set kwargs = result.node.test_metadata.kwargs -%}
        {%- do passed.append([
            graph.nodes[result.node.attached_node],
            kwargs.column_name,
            kwargs.get('seq_column', 'event_seq'),
        ]) -%}
    {%- endfor -%}
    create table if not exists {{ target.database }}.incremental_state.unique_marks
        (model varchar, column_name varchar, high_water bigint, row_count bigint,
        value_hash_sum hugeint);
    {%- for node, column_name, seq_column in passed %}
    delete from {{ target.database }}.incremental_state.unique_marks
        where model = '{{ node.alias }}' and column_name = '{{ column_name }}';
    insert into {{ target.database }}.incremental_state.unique_marks
        select '{{ node.alias }}', '{{ column_name }}', coalesce(max({{ seq_column }}), 0),
            count(*), coalesce(sum(hash({{ column_name }})), 0)
        from {{ node.relation_name }};
    {%- endfor %}
{%- endmacro %}
