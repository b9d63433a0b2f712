-- The console's voucher browser: every voucher created, published or not, with its holder,
-- its journey (published, delivered, accepted, redeemed) and where it stands as of the latest
-- ledger event. Status, first match wins:
--   disabled  a voucher_disabled not followed by voucher_enabled;
--   redeemed  used up: a gift card without balance, or standing redemptions (net of
--             rollbacks) at the per-voucher limit (1 for unique codes unless the campaign
--             says otherwise; standalone codes have none, so they are never used up);
--   expired   past expires_at, or its campaign has finished;
--   active    otherwise (including vouchers not yet published).
-- expires_at: for a published voucher, its publication plus the campaign's
-- valid_days_after_publication, bounded by the campaign's active_until; for one not yet
-- published, active_until.
with

vouchers as (

    select * from {{ ref('int_vouchers_created') }}

),

publications as (

    select * from {{ ref('int_vouchers_published') }}

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

gift_cards as (

    select * from {{ ref('int_gift_cards_issued') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

redemption_counts as (

    select
        voucher_id,
        count(*) filter (where is_succeeded) as redemptions_succeeded,
        count(*) filter (where is_rolled_back) as redemptions_rolled_back,
        count(*) filter (where not is_succeeded) as redemptions_rejected,
        coalesce(sum(net_discount) filter (where is_succeeded), 0)::bigint as discount_net,
        coalesce(sum(net_gift_amount) filter (where is_succeeded), 0)::bigint as gift_spent_net,
        min(attempted_at) filter (where is_succeeded) as first_redeemed_at,
        max(attempted_at) filter (where is_succeeded) as last_redeemed_at,

    from redemptions
    where voucher_id is not null
    group by voucher_id

),

joined as (

    select
        vouchers.voucher_id,
        vouchers.voucher_code,
        vouchers.campaign_id,
        campaigns.campaign_name,
        vouchers.voucher_kind,
        vouchers.creation_source,
        campaigns.status as campaign_status,
        campaigns.currency,
        publications.customer_id,
        publications.channel,
        publications.source as publication_source,
        vouchers.created_at,
        publications.published_at,
        publications.delivered_at,
        publications.delivery_status,
        publications.delivery_attempts,
        publications.accepted_at,
        redemption_counts.first_redeemed_at,
        redemption_counts.last_redeemed_at,
        coalesce(publications.expires_at, campaigns.active_until) as expires_at,
        vouchers.is_disabled,
        vouchers.disabled_at,
        coalesce(redemption_counts.redemptions_succeeded, 0) as redemptions_succeeded,
        coalesce(redemption_counts.redemptions_rolled_back, 0) as redemptions_rolled_back,
        coalesce(redemption_counts.redemptions_succeeded, 0)
        - coalesce(redemption_counts.redemptions_rolled_back, 0) as redemptions,
        coalesce(redemption_counts.redemptions_rejected, 0) as redemptions_rejected,
        coalesce(redemption_counts.discount_net, 0) as discount_net,
        campaigns.per_voucher_limit,
        gift_cards.initial_balance as gift_initial_balance,
        gift_cards.topped_up as gift_topped_up,
        cast(gift_cards.outstanding_balance as bigint) as gift_balance,
        ledger.as_of,

    from vouchers
    cross join ledger
    left join publications
        on vouchers.voucher_id = publications.voucher_id
    left join campaigns
        on vouchers.campaign_id = campaigns.campaign_id
    left join redemption_counts
        on vouchers.voucher_id = redemption_counts.voucher_id
    left join gift_cards
        on vouchers.voucher_id = gift_cards.voucher_id

),

final as (

    select
        voucher_id,
        voucher_code,
        campaign_id,
        campaign_name,
        voucher_kind,
        creation_source,
        case
            when is_disabled then 'disabled'
            when voucher_kind = 'gift' and coalesce(gift_balance, 0) <= 0 then 'redeemed'
            when voucher_kind != 'gift' and redemptions >= per_voucher_limit then 'redeemed'
            when expires_at <= as_of or campaign_status = 'finished' then 'expired'
            else 'active'
        end as status,
        campaign_status,
        currency,
        customer_id,
        customer_id is not null as is_published,
        channel,
        publication_source,
        created_at,
        published_at,
        delivered_at,
        delivery_status,
        coalesce(delivery_attempts, 0) as delivery_attempts,
        accepted_at,
        first_redeemed_at,
        last_redeemed_at,
        expires_at,
        disabled_at,
        redemptions,
        redemptions_succeeded,
        redemptions_rolled_back,
        redemptions_rejected,
        per_voucher_limit,
        per_voucher_limit - redemptions as redemptions_left,
        discount_net,
        gift_initial_balance,
        gift_topped_up,
        gift_balance,
        as_of,

    from joined

)

select * from final
