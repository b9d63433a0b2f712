-- Budget use per campaign as of the latest ledger event. "Used" is what the core counts
-- against limits.budget: discounts redeemed less discounts given back by rollbacks.
with

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

-- Money moves twice: out when redeemed, back when rolled back, each on its own date.
movements as (

    select campaign_id, attempted_at as moved_at, discount as amount,
    from redemptions
    where is_succeeded

    union all

    select campaign_id, rolled_back_at as moved_at, -rolled_back_discount as amount,
    from redemptions
    where is_rolled_back

),

used as (

    select
        movements.campaign_id,
        sum(movements.amount) as budget_used,
        coalesce(
            sum(movements.amount) filter (
                where movements.moved_at > ledger.as_of - interval 7 day
            ),
            0
        ) as used_last_7_days,

    from movements
    cross join ledger
    where movements.moved_at <= ledger.as_of
    group by movements.campaign_id

),

spans as (

    select
        campaigns.campaign_id,
        ledger.as_of,
        -- Active days: calendar days from the campaign's start (its active_from, or its
        -- creation if later) to the as-of date or its end, whichever is earlier, both included.
        greatest(
            date_diff(
                'day',
                cast(greatest(campaigns.created_at, coalesce(campaigns.active_from, campaigns.created_at)) as date),
                cast(least(ledger.as_of, coalesce(campaigns.active_until, ledger.as_of)) as date)
            ) + 1,
            0
        ) as active_days,

    from campaigns
    cross join ledger

),

joined as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.status,
        campaigns.currency,
        spans.as_of,
        campaigns.budget_cap,
        coalesce(used.budget_used, 0) as budget_used,
        campaigns.budget_cap - coalesce(used.budget_used, 0) as budget_remaining,
        spans.active_days,
        coalesce(used.used_last_7_days, 0) as used_last_7_days,

    from campaigns
    inner join spans
        on campaigns.campaign_id = spans.campaign_id
    left join used
        on campaigns.campaign_id = used.campaign_id

),

final as (

    select
        campaign_id,
        campaign_name,
        status,
        currency,
        as_of,
        budget_cap,
        budget_used,
        budget_remaining,
        budget_used / nullif(budget_cap, 0) as budget_share_used,
        active_days,
        budget_used / nullif(active_days, 0) as burn_per_active_day,
        used_last_7_days,
        used_last_7_days / 7 as burn_per_day_last_7_days,
        -- At the last week's pace; null without a cap or without spending in the last week.
        case
            when budget_cap is not null and used_last_7_days > 0
                then greatest(budget_remaining, 0) / (used_last_7_days / 7)
        end as projected_days_to_exhaustion,

    from joined

)

select * from final
