{#- The ledger's event types, by the typed staging model that parses their payloads. Every
    event type not listed here is read from stg_ledger__events (payload as JSON): those are
    rare, so parsing them per use costs little. -#}
{% macro ledger_event_families() -%}
    {{ return({
        'order': ['order_recorded', 'order_refunded', 'order_cancelled'],
        'delivery': ['delivery_attempted', 'voucher_delivered', 'delivery_failed'],
        'voucher': [
            'voucher_created', 'voucher_published', 'voucher_accepted', 'voucher_disabled',
            'voucher_enabled', 'gift_card_topped_up',
        ],
        'redemption': ['redemption_succeeded', 'redemption_rejected', 'redemption_rolled_back'],
        'offer': [
            'customer_held_out', 'offer_skipped', 'trigger_matched', 'trigger_completed',
            'trigger_failed',
        ],
    }) }}
{%- endmacro %}

{#- `('a', 'b')`: a SQL list of the event types of one family, or of all families. -#}
{% macro ledger_event_types(family=none) -%}
    {%- set families = ledger_event_families() -%}
    {%- set types = [] -%}
    {%- for name, members in families.items() if family is none or name == family -%}
        {%- do types.extend(members) -%}
    {%- endfor -%}
    ({% for type in types %}'{{ type }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{#- The columns every event carries, renamed and cast: shared by stg_ledger__events and the
    typed staging models so that they cannot drift apart. -#}
{% macro ledger_event_columns() -%}
        seq as event_seq,
        event_id,
        event_type,
        cast(occurred_at as timestamp) as occurred_at,
        cast(recorded_at as timestamp) as recorded_at,
        cast(event_date as date) as event_date,
        campaign_id,
        voucher_id,
        customer_id,
        order_id,
        channel,
        redemption_id,
        idempotency_key,
        device_hash,
        ip_hash,
        payment_hash,
        store_id,
        staff_id,
        sales_channel,
{%- endmacro %}

{#- `and <seq_column> > N` on an incremental run, N the highest event_seq the model holds;
    nothing otherwise (first run, --full-refresh, dbt compile). Appending only what lies above
    the high-water mark is exact here: the ledger is append-only, a seq never changes meaning,
    and a late event gets a new, larger seq (the raw layer may delete and re-insert a day, but
    with the same seqs). N is fetched first and inlined as a literal so that DuckDB skips the
    row groups below it by their min/max instead of scanning the whole table. -#}
{% macro new_ledger_events(seq_column='event_seq') -%}
    {%- if is_incremental() -%}
        {%- set high_water = run_query(
            'select coalesce(max(event_seq), 0) from ' ~ this
        ).columns[0].values()[0] -%}
        and {{ seq_column }} > {{ high_water }}
    {%- endif -%}
{%- endmacro %}

{#- The ids a timeline row carries, in the timeline's column order: one list for each of its
    per-family parts, which are unioned by position. -#}
{% macro timeline_ids() -%}
        event_seq,
        event_id,
        occurred_at,
        event_type,
        campaign_id,
        voucher_id,
        customer_id,
        order_id,
        channel,
        redemption_id,
        store_id,
        staff_id,
{%- endmacro %}
