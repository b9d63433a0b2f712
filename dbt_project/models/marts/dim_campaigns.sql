-- The console's campaign list: configuration, status and headline counts as of the latest
-- ledger event.
with

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

vouchers as (

    select * from {{ ref('int_vouchers_published') }}

),

assignments as (

    select * from {{ ref('int_customers_assigned') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

voucher_counts as (

    select
        campaign_id,
        count(*) as vouchers_published,
        count(*) filter (where delivery_status = 'delivered') as vouchers_delivered,
        count(*) filter (where accepted_at is not null) as vouchers_accepted,
        count(*) filter (where standing_redemptions > 0) as vouchers_redeemed,

    from vouchers
    group by campaign_id

),

assignment_counts as (

    select
        campaign_id,
        count(*) filter (where arm = 'treatment') as customers_treated,
        count(*) filter (where arm = 'control') as customers_held_out,

    from assignments
    group by campaign_id

),

redemption_counts as (

    select
        campaign_id,
        count(*) filter (where is_succeeded and not is_rolled_back) as redemptions,
        count(*) filter (where is_rolled_back) as redemptions_rolled_back,
        count(*) filter (where not is_succeeded) as redemptions_rejected,
        count(distinct customer_id) filter (where is_succeeded and not is_rolled_back)
            as customers_redeemed,
        coalesce(sum(net_discount) filter (where is_succeeded), 0) as discount_net,
        max(attempted_at) filter (where is_succeeded) as last_redeemed_at,

    from redemptions
    where campaign_id is not null
    group by campaign_id

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.main_campaign_id,
        campaigns.main_campaign_name,
        campaigns.status,
        campaigns.status_since,
        campaigns.voucher_kind,
        campaigns.is_gift_card,
        campaigns.standalone_code,
        campaigns.discount_type,
        campaigns.discount_value,
        campaigns.discount_max_discount,
        campaigns.discount_free_product,
        campaigns.currency,
        campaigns.budget_cap,
        campaigns.per_customer_limit,
        campaigns.per_voucher_limit,
        campaigns.campaign_total_limit,
        campaigns.min_order_amount,
        campaigns.is_acceptance_required,
        campaigns.valid_days_after_publication,
        campaigns.distribution_mode,
        campaigns.distribution_segment,
        campaigns.distribution_channels,
        campaigns.trigger_type,
        campaigns.control_share,
        campaigns.has_control_group,
        campaigns.active_from,
        campaigns.active_until,
        campaigns.created_at,
        ledger.as_of,
        coalesce(voucher_counts.vouchers_published, 0) as vouchers_published,
        coalesce(voucher_counts.vouchers_delivered, 0) as vouchers_delivered,
        coalesce(voucher_counts.vouchers_accepted, 0) as vouchers_accepted,
        coalesce(voucher_counts.vouchers_redeemed, 0) as vouchers_redeemed,
        coalesce(assignment_counts.customers_treated, 0) as customers_treated,
        coalesce(assignment_counts.customers_held_out, 0) as customers_held_out,
        coalesce(redemption_counts.redemptions, 0) as redemptions,
        coalesce(redemption_counts.redemptions_rolled_back, 0) as redemptions_rolled_back,
        coalesce(redemption_counts.redemptions_rejected, 0) as redemptions_rejected,
        coalesce(redemption_counts.customers_redeemed, 0) as customers_redeemed,
        coalesce(redemption_counts.discount_net, 0) as discount_net,
        redemption_counts.last_redeemed_at,

    from campaigns
    cross join ledger
    left join voucher_counts
        on campaigns.campaign_id = voucher_counts.campaign_id
    left join assignment_counts
        on campaigns.campaign_id = assignment_counts.campaign_id
    left join redemption_counts
        on campaigns.campaign_id = redemption_counts.campaign_id

)

select * from final
