-- One row per voucher the core created (generated, imported or a campaign's standalone code),
-- published or not, with whether it is disabled now: the latest of voucher_disabled and
-- voucher_enabled wins. Rebuilt per voucher (see incremental_entities): a voucher is recomputed
-- when its creation, a disabling or an enabling is new.
{{ config(
    materialized='incremental', incremental_strategy='delete+insert', unique_key='voucher_id',
) }}

{%- set high_water = entity_high_water() %}

with

events as (

    select * from {{ ref('stg_ledger__voucher_events') }}
    where event_type in ('voucher_created', 'voucher_disabled', 'voucher_enabled')
    {%- if high_water is not none %}
        and voucher_id in (
            select voucher_id from {{ ref('stg_ledger__voucher_events') }}
            where event_seq > {{ high_water }}
        )
    {%- endif %}

),

created as (

    select
        voucher_id,
        campaign_id,
        code as voucher_code,
        kind as voucher_kind,
        source as creation_source,
        occurred_at as created_at,
        gift_balance as gift_initial_balance,
        event_seq,

    from events
    where event_type = 'voucher_created'
    qualify row_number() over (partition by voucher_id order by event_seq) = 1

),

switches as (

    select
        voucher_id,
        arg_max(event_type, event_seq) = 'voucher_disabled' as is_disabled,
        max(occurred_at) filter (where event_type = 'voucher_disabled') as last_disabled_at,
        max(event_seq) as last_event_seq,

    from events
    where event_type in ('voucher_disabled', 'voucher_enabled')
    group by voucher_id

),

final as (

    select
        created.voucher_id,
        created.campaign_id,
        created.voucher_code,
        created.voucher_kind,
        created.creation_source,
        created.created_at,
        created.gift_initial_balance,
        coalesce(switches.is_disabled, false) as is_disabled,
        case when switches.is_disabled then switches.last_disabled_at end as disabled_at,
        -- the newest event in the row: what entity_high_water reads
        greatest(created.event_seq, switches.last_event_seq) as last_event_seq,

    from created
    left join switches
        on created.voucher_id = switches.voucher_id

)

select * from final
