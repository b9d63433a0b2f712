{#- Models rebuilt per entity: an incremental model with `delete+insert` on the entity's key
    recomputes, from all of their events, only the entities that new events touched, and
    replaces their rows. Exact because an entity's row depends on its own events alone (and on
    tables read whole, like campaigns); where it depends on the "as of" moment or on a whole
    population, the model stays a table. -#}

{#- The highest event_seq an entity table holds (its `last_event_seq`: the newest event that
    went into a row), as a literal; none when the model is built from scratch (first run,
    --full-refresh, dbt compile). Every event above it is new to the model. Lower than the
    newest event the model has seen when that event made no row (a refund of an unknown
    order): such events are looked at again next time, which only recomputes rows as they are.
    Exact for the reasons the typed staging tables are (see new_ledger_events). -#}
{% macro entity_high_water(column='last_event_seq') -%}
    {%- if is_incremental() -%}
        {{ return(run_query(
            'select coalesce(max(' ~ column ~ '), 0) from ' ~ this
        ).columns[0].values()[0]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- Marts keep their columns, so a mart rebuilt per entity records elsewhere how far it has
    read its upstream entity tables: one table per mart in the schema `incremental_state`
    (created on-run-start, never published), one row per upstream model with the highest
    `last_event_seq` it held when the mart was built. Written by a post-hook, in the mart's own
    transaction, so the two cannot disagree; a mart built without it (or from scratch) builds
    everything. -#}
{% macro upstream_high_waters() -%}
    {%- if is_incremental() -%}
        {%- set state = adapter.get_relation(
            database=this.database, schema='incremental_state', identifier=this.identifier
        ) -%}
        {%- if state is not none -%}
            {%- set rows = run_query('select upstream, high_water from ' ~ state) -%}
            {%- set high_waters = {} -%}
            {%- for row in rows -%}
                {%- do high_waters.update({row[0]: row[1]}) -%}
            {%- endfor -%}
            {{ return(high_waters) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The post-hook that records them: `upstreams` are the entity tables the mart reads. -#}
{% macro record_upstream_high_waters(upstreams) -%}
    create or replace table {{ this.database }}.incremental_state.{{ this.identifier }} as
    {% for upstream in upstreams %}
    select
        '{{ upstream }}' as upstream,
        (select coalesce(max(last_event_seq), 0) from {{ ref(upstream) }}) as high_water,
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
{%- endmacro %}
