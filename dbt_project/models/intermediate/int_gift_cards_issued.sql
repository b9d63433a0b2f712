-- One row per gift card (a voucher of a gift campaign) with its balance: the initial balance
-- plus top-ups, less gift amounts redeemed, plus gift amounts given back by rollbacks. The
-- outstanding balance is what the merchant still owes the holder.
with

vouchers as (

    select * from {{ ref('stg_ledger__voucher_events') }}

),

redemptions as (

    select * from {{ ref('stg_ledger__redemption_events') }}

),

created as (

    select
        voucher_id,
        campaign_id,
        code as voucher_code,
        occurred_at as created_at,
        gift_balance as initial_balance,

    from vouchers
    where event_type = 'voucher_created' and kind = 'gift'
    qualify row_number() over (partition by voucher_id order by event_seq) = 1

),

movement_events as (

    select voucher_id, event_type, amount,
    from vouchers
    where event_type = 'gift_card_topped_up'

    union all

    select voucher_id, event_type, gift_amount as amount,
    from redemptions
    where event_type in ('redemption_succeeded', 'redemption_rolled_back')

),

movements as (

    select
        voucher_id,
        sum(amount) filter (where event_type = 'gift_card_topped_up') as topped_up,
        sum(amount) filter (where event_type = 'redemption_succeeded') as redeemed,
        sum(amount) filter (where event_type = 'redemption_rolled_back') as rolled_back,

    from movement_events
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
