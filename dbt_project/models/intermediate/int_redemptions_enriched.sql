-- One row per redemption attempt, succeeded or rejected, with its order, amounts, reasons,
-- request context and, for a success, its rollback (at most one: a second is refused).
-- Rebuilt per attempt (see incremental_entities): an attempt is recomputed when it is new or
-- when a rollback of its redemption is.
{{ config(
    materialized='incremental', incremental_strategy='delete+insert',
    unique_key='attempt_event_id',
) }}

{%- set high_water = entity_high_water() %}

with

events as (

    select * from {{ ref('stg_ledger__redemption_events') }}
    {%- if high_water is not none %}
    where event_seq > {{ high_water }}
        or redemption_id in (
            select redemption_id from {{ ref('stg_ledger__redemption_events') }}
            where event_seq > {{ high_water }}
        )
    {%- endif %}

),

attempts as (

    select
        event_id as attempt_event_id,
        redemption_id,
        event_type = 'redemption_succeeded' as is_succeeded,
        occurred_at as attempted_at,
        campaign_id,
        voucher_id,
        code as voucher_code,
        customer_id,
        coalesce(order_id, order_ref) as order_id,
        order_amount,
        discount,
        gift_amount,
        coalesce(currency, order_currency) as currency,
        -- The first failing rule is the primary reason.
        reason_codes,
        idempotency_key,
        store_id,
        staff_id,
        sales_channel,
        device_hash,
        ip_hash,
        payment_hash,
        -- Imported redemptions (dunnhumby) carry no amounts.
        coalesce(amounts_known, true) as are_amounts_known,
        event_seq,

    from events
    where event_type in ('redemption_succeeded', 'redemption_rejected')

),

rollbacks as (

    select
        redemption_id,
        rollback_id,
        occurred_at as rolled_back_at,
        reason as rollback_reason,
        cause as rollback_cause,
        discount as rolled_back_discount,
        gift_amount as rolled_back_gift_amount,
        event_seq,

    from events
    where event_type = 'redemption_rolled_back'
    qualify row_number() over (partition by redemption_id order by event_seq) = 1

),

final as (

    select
        attempts.attempt_event_id,
        attempts.redemption_id,
        attempts.is_succeeded,
        attempts.attempted_at,
        attempts.campaign_id,
        attempts.voucher_id,
        attempts.voucher_code,
        attempts.customer_id,
        attempts.order_id,
        attempts.order_amount,
        attempts.discount,
        attempts.gift_amount,
        attempts.currency,
        attempts.reason_codes,
        attempts.reason_codes[1] as primary_reason_code,
        attempts.idempotency_key,
        attempts.store_id,
        attempts.staff_id,
        attempts.sales_channel,
        attempts.device_hash,
        attempts.ip_hash,
        attempts.payment_hash,
        attempts.are_amounts_known,
        rollbacks.rollback_id,
        rollbacks.rolled_back_at,
        rollbacks.rollback_reason,
        rollbacks.rollback_cause,
        rollbacks.rolled_back_at is not null as is_rolled_back,
        coalesce(rollbacks.rolled_back_discount, 0) as rolled_back_discount,
        coalesce(rollbacks.rolled_back_gift_amount, 0) as rolled_back_gift_amount,
        attempts.discount - coalesce(rollbacks.rolled_back_discount, 0) as net_discount,
        attempts.gift_amount - coalesce(rollbacks.rolled_back_gift_amount, 0) as net_gift_amount,
        -- the newest event in the row: what entity_high_water reads
        greatest(attempts.event_seq, rollbacks.event_seq) as last_event_seq,

    from attempts
    left join rollbacks
        on attempts.is_succeeded
        and attempts.redemption_id = rollbacks.redemption_id

)

select * from final
