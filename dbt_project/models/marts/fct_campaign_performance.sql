-- Two views of what a campaign earned, side by side; every definition (the window, gross and
-- net revenue, the intervals) is spelled out in _m1_marts__models.yml.
--
-- attributed_*: everything on orders that carried a standing (not rolled back) redemption of
-- the campaign, whether or not the voucher caused the order. A redemption without an order
-- (no order id and no known amount: an imported coupon history) is a redemption, not an order.
--
-- incremental_*: only for campaigns with a control group. Treated customers (everyone a
-- distribution decided on and did not hold out) against held-out customers, each over the
-- `campaign_outcome_window_days` days after assignment, counting customers whose window has
-- closed by what the ledger knows (int_ledgers_read.known_until); the customers whose window
-- is still open are counted apart, with the instant the last of their windows closes.
-- 95% confidence intervals use the normal approximation: for conversion and visit rate the
-- unpooled standard error of a difference of proportions, for revenue per customer Welch's
-- standard error (unequal variances); profit = incremental revenue x `campaign_gross_margin` -
-- the treated group's discount, its interval the revenue interval scaled the same way (the
-- discount is known, not estimated); incremental_profit_se is that interval's standard error.
{% set margin = var('campaign_gross_margin', 0.65) %}
{% set z = 1.96 %}

with

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

orders as (

    select * from {{ ref('int_orders_recorded') }}

),

gift_cards as (

    select * from {{ ref('int_gift_cards_issued') }}

),

outcomes as (

    select * from {{ ref('int_assignment_outcomes_measured') }}

),

assignments as (

    select * from {{ ref('int_customers_assigned') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

engagements as (

    select * from {{ ref('int_engagements_recorded') }}

),

-- Visit rates mean something only where the ledger records visits at all.
visits_recorded as (

    select count(*) filter (where engagement = 'visited') > 0 as has_visits
    from engagements

),

-- Customers whose outcome window has not closed by what the ledger knows: they are measured
-- once it has (and counted in neither arm until then).
open_windows as (

    select
        assignments.campaign_id,
        count(*) as customers,
        max(assignments.assigned_at + to_days({{ var('campaign_outcome_window_days', 14) }}))
            as closes_at,

    from assignments
    cross join ledger
    where assignments.assigned_at + to_days({{ var('campaign_outcome_window_days', 14) }})
        > ledger.known_until
    group by assignments.campaign_id

),

discounts as (

    select
        campaign_id,
        count(*) as redemptions,
        count(*) filter (where is_rolled_back) as rolled_back_redemptions,
        sum(discount) as discount_given,
        sum(rolled_back_discount) as discount_rolled_back,
        sum(net_discount) as discount_net,

    from redemptions
    where is_succeeded
    group by campaign_id

),

-- One row per campaign and order with a standing redemption; the order's amount is the one
-- the redemption carried (some redeemed orders are never recorded on their own), else the
-- recorded order's, less refunds. A redemption names no order when it has no order id and no
-- known amount: it is not an order of revenue 0.
attributed_orders as (

    select
        redemptions.campaign_id,
        coalesce(redemptions.order_id, redemptions.redemption_id) as order_key,
        any_value(redemptions.customer_id) as customer_id,
        any_value(
            coalesce(
                case when redemptions.are_amounts_known then redemptions.order_amount end,
                orders.amount,
                0
            )
        ) as order_amount,
        any_value(coalesce(orders.refunded_amount, 0)) as refunded_amount,

    from redemptions
    left join orders
        on redemptions.order_id = orders.order_id
    where redemptions.is_succeeded and not redemptions.is_rolled_back
        and (
            redemptions.order_id is not null
            or (redemptions.are_amounts_known and redemptions.order_amount is not null)
        )
    group by all

),

attributed as (

    select
        campaign_id,
        count(*) as orders,
        count(distinct customer_id) as customers,
        sum(greatest(order_amount - refunded_amount, 0)) as revenue,

    from attributed_orders
    group by campaign_id

),

liability as (

    select
        campaign_id,
        sum(outstanding_balance) as outstanding_balance,

    from gift_cards
    group by campaign_id

),

arms as (

    select
        campaign_id,
        any_value(window_days) as window_days,
        count(*) filter (where arm = 'treatment') as n_t,
        count(*) filter (where arm = 'control') as n_c,
        avg(has_ordered::int) filter (where arm = 'treatment') as conv_t,
        avg(has_ordered::int) filter (where arm = 'control') as conv_c,
        avg(has_visited::int) filter (where arm = 'treatment') as visit_t,
        avg(has_visited::int) filter (where arm = 'control') as visit_c,
        avg(revenue) filter (where arm = 'treatment') as mean_t,
        avg(revenue) filter (where arm = 'control') as mean_c,
        var_samp(revenue) filter (where arm = 'treatment') as var_t,
        var_samp(revenue) filter (where arm = 'control') as var_c,
        coalesce(sum(campaign_discount) filter (where arm = 'treatment'), 0) as discount_t,

    from outcomes
    group by campaign_id

),

lift as (

    select
        campaign_id,
        window_days,
        n_t,
        n_c,
        conv_t,
        conv_c,
        conv_t - conv_c as conv_diff,
        sqrt(conv_t * (1 - conv_t) / n_t + conv_c * (1 - conv_c) / n_c) as conv_se,
        visit_t,
        visit_c,
        visit_t - visit_c as visit_diff,
        sqrt(visit_t * (1 - visit_t) / n_t + visit_c * (1 - visit_c) / n_c) as visit_se,
        mean_t,
        mean_c,
        mean_t - mean_c as mean_diff,
        sqrt(var_t / n_t + var_c / n_c) as mean_se,
        discount_t,

    from arms
    -- Both arms need someone in them to be compared at all.
    where n_t > 0 and n_c > 0

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.currency,
        campaigns.has_control_group,

        coalesce(discounts.redemptions, 0) - coalesce(discounts.rolled_back_redemptions, 0)
            as attributed_redemptions,
        coalesce(attributed.orders, 0) as attributed_orders,
        coalesce(attributed.customers, 0) as attributed_customers,
        coalesce(attributed.revenue, 0) as attributed_revenue,
        coalesce(discounts.discount_given, 0) as attributed_discount_given,
        coalesce(discounts.discount_rolled_back, 0) as attributed_discount_rolled_back,
        coalesce(discounts.discount_net, 0) as attributed_discount,
        coalesce(attributed.revenue, 0) - coalesce(discounts.discount_net, 0)
            as attributed_net_revenue,
        coalesce(attributed.revenue, 0) / nullif(coalesce(discounts.discount_net, 0), 0)
            as attributed_return_on_discount,
        case when campaigns.is_gift_card then coalesce(liability.outstanding_balance, 0) end
            as attributed_gift_card_liability,

        case when campaigns.has_control_group
            then {{ var('campaign_outcome_window_days', 14) }} end as incremental_window_days,
        case when campaigns.has_control_group then {{ margin }} end as incremental_gross_margin,
        case when campaigns.has_control_group then coalesce(lift.n_t, 0) end
            as incremental_treated_customers,
        case when campaigns.has_control_group then coalesce(lift.n_c, 0) end
            as incremental_control_customers,
        case when campaigns.has_control_group then coalesce(open_windows.customers, 0) end
            as incremental_open_window_customers,
        case when campaigns.has_control_group then open_windows.closes_at end
            as outcome_window_closes_at,
        -- Rounded so that the figures read (and compare) cleanly: shares to 6 decimals, means
        -- to 2 decimals of a minor unit, totals to whole minor units.
        round(lift.conv_t, 6) as incremental_treated_conversion,
        round(lift.conv_c, 6) as incremental_control_conversion,
        round(lift.conv_diff, 6) as incremental_conversion,
        round(lift.conv_diff - {{ z }} * lift.conv_se, 6) as incremental_conversion_ci_low,
        round(lift.conv_diff + {{ z }} * lift.conv_se, 6) as incremental_conversion_ci_high,
        case when visits_recorded.has_visits then round(lift.visit_t, 6) end
            as incremental_treated_visit_rate,
        case when visits_recorded.has_visits then round(lift.visit_c, 6) end
            as incremental_control_visit_rate,
        case when visits_recorded.has_visits then round(lift.visit_diff, 6) end
            as incremental_visit_rate,
        case when visits_recorded.has_visits
            then round(lift.visit_diff - {{ z }} * lift.visit_se, 6) end
            as incremental_visit_rate_ci_low,
        case when visits_recorded.has_visits
            then round(lift.visit_diff + {{ z }} * lift.visit_se, 6) end
            as incremental_visit_rate_ci_high,
        round(lift.mean_t, 2) as incremental_treated_revenue_per_customer,
        round(lift.mean_c, 2) as incremental_control_revenue_per_customer,
        round(lift.mean_diff, 2) as incremental_revenue_per_customer,
        round(lift.mean_diff - {{ z }} * lift.mean_se, 2)
            as incremental_revenue_per_customer_ci_low,
        round(lift.mean_diff + {{ z }} * lift.mean_se, 2)
            as incremental_revenue_per_customer_ci_high,
        cast(round(lift.mean_diff * lift.n_t) as bigint) as incremental_revenue,
        cast(round((lift.mean_diff - {{ z }} * lift.mean_se) * lift.n_t) as bigint)
            as incremental_revenue_ci_low,
        cast(round((lift.mean_diff + {{ z }} * lift.mean_se) * lift.n_t) as bigint)
            as incremental_revenue_ci_high,
        lift.discount_t as incremental_treated_discount,
        cast(round(lift.mean_diff * lift.n_t * {{ margin }} - lift.discount_t) as bigint)
            as incremental_profit,
        cast(round(
            (lift.mean_diff - {{ z }} * lift.mean_se) * lift.n_t * {{ margin }} - lift.discount_t
        ) as bigint) as incremental_profit_ci_low,
        cast(round(
            (lift.mean_diff + {{ z }} * lift.mean_se) * lift.n_t * {{ margin }} - lift.discount_t
        ) as bigint) as incremental_profit_ci_high,
        -- The standard error the interval came from, for what follows from it: the smallest
        -- effect this control group could detect, the interval of a sum of campaigns.
        round(lift.mean_se * lift.n_t * {{ margin }}, 2) as incremental_profit_se,

    from campaigns
    left join discounts
        on campaigns.campaign_id = discounts.campaign_id
    left join attributed
        on campaigns.campaign_id = attributed.campaign_id
    left join liability
        on campaigns.campaign_id = liability.campaign_id
    left join lift
        on campaigns.campaign_id = lift.campaign_id
        and campaigns.has_control_group
    left join open_windows
        on campaigns.campaign_id = open_windows.campaign_id
    cross join visits_recorded

)

select * from final
