-- Where each campaign loses people, per channel and cohort day. "Day" is the UTC date the
-- voucher was published (for held-out and skipped customers: the date of that decision), and
-- every later step is counted on the voucher's publication day however late it happened: a
-- cohort's conversion rates compare like with like, and recent cohorts still grow.
-- Engagement (a message opened or clicked, a visit from the campaign) sits between delivered
-- and accepted; each is NULL, not 0, where the ledger records none of its kind at all.
with

vouchers as (

    select * from {{ ref('int_vouchers_published') }}

),

decisions as (

    select * from {{ ref('int_offers_decided') }}

),

engagements as (

    select * from {{ ref('int_engagements_recorded') }}

),

recorded as (

    select
        count(*) filter (where engagement = 'opened') > 0 as has_opens,
        count(*) filter (where engagement = 'clicked') > 0 as has_clicks,
        count(*) filter (where engagement = 'visited') > 0 as has_visits,

    from engagements

),

-- A published voucher is engaged with when its holder opened or clicked its message (the
-- engagement names the voucher, or only the campaign) or visited from its campaign, at or after
-- its publication.
voucher_engagement as (

    select
        vouchers.voucher_id,
        bool_or(engagements.engagement = 'opened') as is_opened,
        bool_or(engagements.engagement = 'clicked') as is_clicked,
        bool_or(engagements.engagement = 'visited') as is_visited,

    from vouchers
    inner join engagements
        on engagements.customer_id = vouchers.customer_id
        and engagements.campaign_id = vouchers.campaign_id
        and (engagements.voucher_id is null or engagements.voucher_id = vouchers.voucher_id)
        and engagements.occurred_at >= vouchers.published_at
    group by vouchers.voucher_id

),

voucher_steps as (

    select
        campaign_id,
        coalesce(channel, 'none') as channel,
        cast(published_at as date) as cohort_date,
        count(*) as published,
        count(*) filter (where delivery_status = 'delivered') as delivered,
        count(*) filter (where delivery_status = 'failed') as delivery_failed,
        count(*) filter (where delivery_status = 'pending') as delivery_pending,
        count(*) filter (where voucher_engagement.is_opened) as opened,
        count(*) filter (where voucher_engagement.is_clicked) as clicked,
        count(*) filter (where voucher_engagement.is_visited) as visited,
        count(*) filter (where accepted_at is not null) as accepted,
        -- A voucher counts as redeemed while one of its redemptions stands.
        count(*) filter (where standing_redemptions > 0) as redeemed,
        count(*) filter (where rejected_attempts > 0) as rejected,
        count(*) filter (where rolled_back_redemptions > 0) as rolled_back,

    from vouchers
    left join voucher_engagement
        on vouchers.voucher_id = voucher_engagement.voucher_id
    group by all

),

-- Held out and skipped customers never reach a channel: they are counted under 'none'.
decision_steps as (

    select
        campaign_id,
        'none' as channel,
        cast(decided_at as date) as cohort_date,
        count(*) filter (where decision = 'held_out') as held_out,
        count(*) filter (where decision = 'skipped') as skipped,
        count(*) filter (where skip_reason = 'frequency_cap') as skipped_frequency_cap,
        count(*) filter (where skip_reason = 'no_consent') as skipped_no_consent,
        count(*) filter (where skip_reason = 'channel_unavailable') as skipped_channel_unavailable,
        count(*) filter (where skip_reason = 'no_contact') as skipped_no_contact,
        count(*) filter (where skip_reason = 'unknown_customer') as skipped_unknown_customer,
        count(*) filter (
            where decision = 'skipped'
            and coalesce(skip_reason, '') not in (
                'frequency_cap', 'no_consent', 'channel_unavailable', 'no_contact',
                'unknown_customer'
            )
        ) as skipped_other,

    from decisions
    where decision in ('held_out', 'skipped')
    group by all

),

joined as (

    select
        coalesce(voucher_steps.campaign_id, decision_steps.campaign_id) as campaign_id,
        coalesce(voucher_steps.channel, decision_steps.channel) as channel,
        coalesce(voucher_steps.cohort_date, decision_steps.cohort_date) as cohort_date,
        coalesce(decision_steps.held_out, 0) as held_out,
        coalesce(decision_steps.skipped, 0) as skipped,
        coalesce(decision_steps.skipped_frequency_cap, 0) as skipped_frequency_cap,
        coalesce(decision_steps.skipped_no_consent, 0) as skipped_no_consent,
        coalesce(decision_steps.skipped_channel_unavailable, 0) as skipped_channel_unavailable,
        coalesce(decision_steps.skipped_no_contact, 0) as skipped_no_contact,
        coalesce(decision_steps.skipped_unknown_customer, 0) as skipped_unknown_customer,
        coalesce(decision_steps.skipped_other, 0) as skipped_other,
        coalesce(voucher_steps.published, 0) as published,
        coalesce(voucher_steps.delivered, 0) as delivered,
        coalesce(voucher_steps.delivery_failed, 0) as delivery_failed,
        coalesce(voucher_steps.delivery_pending, 0) as delivery_pending,
        case when recorded.has_opens then coalesce(voucher_steps.opened, 0) end as opened,
        case when recorded.has_clicks then coalesce(voucher_steps.clicked, 0) end as clicked,
        case when recorded.has_visits then coalesce(voucher_steps.visited, 0) end as visited,
        coalesce(voucher_steps.accepted, 0) as accepted,
        coalesce(voucher_steps.redeemed, 0) as redeemed,
        coalesce(voucher_steps.rejected, 0) as rejected,
        coalesce(voucher_steps.rolled_back, 0) as rolled_back,

    from voucher_steps
    full outer join decision_steps
        on voucher_steps.campaign_id = decision_steps.campaign_id
        and voucher_steps.channel = decision_steps.channel
        and voucher_steps.cohort_date = decision_steps.cohort_date
    cross join recorded

),

final as (

    select
        *,
        -- Rates are null, not zero, where the step before has nobody in it.
        delivered / nullif(published, 0) as delivered_per_published,
        accepted / nullif(delivered, 0) as accepted_per_delivered,
        redeemed / nullif(accepted, 0) as redeemed_per_accepted,
        redeemed / nullif(published, 0) as redeemed_per_published,

    from joined

)

select * from final
