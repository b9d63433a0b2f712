with

wallet as (

    select * from {{ ref('int_vouchers_held') }}
    where wallet_status = 'active'

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

final as (

    select
        wallet.voucher_id,
        wallet.customer_id,
        wallet.voucher_code,
        wallet.campaign_id,
        campaigns.campaign_name,
        wallet.voucher_kind,
        wallet.channel,
        wallet.published_at,
        wallet.delivered_at,
        wallet.accepted_at,
        wallet.expires_at,
        wallet.days_to_expiry,
        wallet.expires_at <= wallet.as_of + interval 7 day as is_expiring_7d,
        wallet.redemptions_left,
        wallet.gift_balance,
        wallet.as_of,

    from wallet
    left join campaigns
        on wallet.campaign_id = campaigns.campaign_id

)

select * from final
