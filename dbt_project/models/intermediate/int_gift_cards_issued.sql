-- One row per gift card (a voucher of a gift campaign) with its balance: the initial balance
-- plus top-ups, less gift amounts redeemed, plus gift amounts given back by rollbacks. The
-- outstanding balance is what the merchant still owes the holder.
with

events as (

    select * from {{ ref('stg_ledger__events') }}

),

created as (

    select
        voucher_id,
        campaign_id,
        payload->>'code' as voucher_code,
        occurred_at as created_at,
        cast(payload->>'gift_balance' as bigint) as initial_balance,

    from events
    where event_type = 'voucher_created' and payload->>'kind' = 'gift'
    qualify row_number() over (partition by voucher_id order by event_seq) = 1

),

movements as (

    select
        voucher_id,
        sum(cast(payload->>'amount' as bigint))
            filter (where event_type = 'gift_card_topped_up') as topped_up,
        sum(cast(payload->>'gift_amount' as bigint))
            filter (where event_type = 'redemption_succeeded') as redeemed,
        sum(cast(payload->>'gift_amount' as bigint))
            filter (where event_type = 'redemption_rolled_back') as rolled_back,

    from events
    where event_type in ('gift_card_topped_up', 'redemption_succeeded', 'redemption_rolled_back')
    group by voucher_id

),

final as (

    select
        created.voucher_id,
        created.campaign_id,
        created.voucher_code,
        created.created_at,
        created.initial_balance,
        coalesce(movements.topped_up, 0) as topped_up,
        coalesce(movements.redeemed, 0) as redeemed,
        coalesce(movements.rolled_back, 0) as rolled_back,
        created.initial_balance
        + coalesce(movements.topped_up, 0)
        - coalesce(movements.redeemed, 0)
        + coalesce(movements.rolled_back, 0) as outstanding_balance,

    from created
    left join movements
        on created.voucher_id = movements.voucher_id

)

select * from final
