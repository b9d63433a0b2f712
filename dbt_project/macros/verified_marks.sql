{#- How far an append-only model's `unique_appended` tests have already vouched for it: after a
    run in which such a test passed, its model's highest seq and row count are recorded in
    incremental_state.verified_marks (on-run-end). A later test then looks only at rows above
    that seq. The mark is ignored (the whole table is checked) on a --full-refresh, and when
    the rows up to it are not as many as recorded: the table was rebuilt or rows were added
    below the mark, so they may not be the rows that were found unique. -#}

{% macro verified_mark(model, seq_column) -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set marks = adapter.get_relation(
        database=model.database, schema='incremental_state', identifier='verified_marks'
    ) -%}
    {%- if marks is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select mark.high_water from " ~ marks ~ " as mark "
        ~ "where mark.model = '" ~ model.identifier ~ "' and mark.row_count = "
        ~ "(select count(*) from " ~ model ~ " where " ~ seq_column ~ " <= mark.high_water)"
    ) -%}
    {%- if found.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}

{#- on-run-end: the marks of the models whose every unique_appended test ran and passed. -#}
{% macro record_verified_marks(results) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set verdicts = {} -%}
    {%- for result in results if result.node.resource_type == 'test'
        and result.node.test_metadata is defined and result.node.test_metadata is not none
        and result.node.test_metadata.name == 'unique_appended' -%}
        {%- set model_id = result.node.attached_node -%}
        {%- set seq_column = result.node.test_metadata.kwargs.get('seq_column', 'event_seq') -%}
        {%- set passed = result.status == 'pass' and verdicts.get(model_id, [true])[0] -%}
        {%- do verdicts.update({model_id: [passed, seq_column]}) -%}
    {%- endfor -%}
    create table if not exists {{ target.database }}.incremental_state.verified_marks
        (model varchar, high_water bigint, row_count bigint);
    {%- for model_id, verdict in verdicts.items() if verdict[0] %}
    {%- set node = graph.nodes[model_id] %}
    {%- set seq_column = verdict[1] %}
    delete from {{ target.database }}.incremental_state.verified_marks
        where model = '{{ node.alias }}';
    insert into {{ target.database }}.incremental_state.verified_marks
        select '{{ node.alias }}', coalesce(max({{ seq_column }}), 0), count(*)
        from {{ node.relation_name }};
    {%- endfor %}
{%- endmacro %}
