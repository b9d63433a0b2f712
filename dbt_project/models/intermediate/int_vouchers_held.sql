-- Where each published voucher stands in its holder's wallet at the as-of instant. A voucher
-- is active when it is not disabled, its campaign is not finished, it has not expired, and it
-- is not used up: a gift card while it has a balance, any other voucher while its standing
-- redemptions (net of rollbacks) are below the per-voucher limit (1 for unique codes unless
-- the campaign says otherwise; none for standalone codes).
with

vouchers as (

    select * from {{ ref('int_vouchers_published') }}

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

gift_cards as (

    select * from {{ ref('int_gift_cards_issued') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

joined as (

    select
        vouchers.voucher_id,
        vouchers.customer_id,
        vouchers.campaign_id,
        vouchers.voucher_code,
        vouchers.channel,
        vouchers.published_at,
        vouchers.delivered_at,
        vouchers.accepted_at,
        vouchers.expires_at,
        vouchers.standing_redemptions,
        vouchers.is_disabled,
        campaigns.voucher_kind,
        campaigns.status as campaign_status,
        coalesce(
            campaigns.per_voucher_limit,
            case when campaigns.voucher_kind = 'unique' then 1 end
        ) as per_voucher_limit,
        cast(gift_cards.outstanding_balance as bigint) as gift_balance,
        ledger.as_of,

    from vouchers
    cross join ledger
    left join campaigns
        on vouchers.campaign_id = campaigns.campaign_id
    left join gift_cards
        on vouchers.voucher_id = gift_cards.voucher_id

),

final as (

    select
        voucher_id,
        customer_id,
        campaign_id,
        voucher_code,
        voucher_kind,
        channel,
        published_at,
        delivered_at,
        accepted_at,
        expires_at,
        standing_redemptions,
        per_voucher_limit,
        per_voucher_limit - standing_redemptions as redemptions_left,
        gift_balance,
        campaign_status,
        case
            when is_disabled then 'disabled'
            when campaign_status = 'finished' then 'campaign_finished'
            when expires_at <= as_of then 'expired'
            when voucher_kind = 'gift' and coalesce(gift_balance, 0) <= 0 then 'used_up'
            when standing_redemptions >= per_voucher_limit then 'used_up'
            else 'active'
        end as wallet_status,
        date_diff('millisecond', as_of, expires_at) / 86400000.0 as days_to_expiry,
        as_of,

    from joined

)

select * from final
