-- One row per campaign and assigned customer whose outcome window has closed by what the
-- ledger knows (known_until: when it was last written, so an imported history's windows are
-- closed): what the customer did in the `campaign_outcome_window_days` days after assignment
-- (orders, revenue net of refunds and cancellations, site visits, and this campaign's discount
-- net of rollbacks). Customers whose window is still open are left out, so both arms are
-- always measured over the same length of time.
{% set window_days = var('campaign_outcome_window_days', 14) %}

with

assignments as (

    select * from {{ ref('int_customers_assigned') }}

),

orders as (

    select * from {{ ref('int_orders_recorded') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

visits as (

    select * from {{ ref('int_engagements_recorded') }}
    where engagement = 'visited'

),

windows as (

    select
        assignments.campaign_id,
        assignments.customer_id,
        assignments.arm,
        assignments.assigned_at,
        {{ window_days }} as window_days,
        assignments.assigned_at + to_days({{ window_days }}) as window_ends_at,

    from assignments
    cross join ledger
    where assignments.assigned_at + to_days({{ window_days }}) <= ledger.known_until

),

orders_in_window as (

    select
        windows.campaign_id,
        windows.customer_id,
        count(*) filter (where not orders.is_cancelled) as orders,
        coalesce(sum(orders.net_amount), 0) as revenue,

    from windows
    inner join orders
        on windows.customer_id = orders.customer_id
        and orders.ordered_at > windows.assigned_at
        and orders.ordered_at <= windows.window_ends_at
    group by windows.campaign_id, windows.customer_id

),

-- Every visit counts, attributed to a campaign or not: a control customer was sent nothing, so
-- only all visits compare like with like.
visits_in_window as (

    select
        windows.campaign_id,
        windows.customer_id,
        count(*) as visits,

    from windows
    inner join visits
        on windows.customer_id = visits.customer_id
        and visits.occurred_at > windows.assigned_at
        and visits.occurred_at <= windows.window_ends_at
    group by windows.campaign_id, windows.customer_id

),

discount_in_window as (

    select
        windows.campaign_id,
        windows.customer_id,
        count(*) filter (where not redemptions.is_rolled_back) as redemptions,
        sum(redemptions.net_discount) as discount,

    from windows
    inner join redemptions
        on windows.customer_id = redemptions.customer_id
        and windows.campaign_id = redemptions.campaign_id
        and redemptions.is_succeeded
        and redemptions.attempted_at > windows.assigned_at
        and redemptions.attempted_at <= windows.window_ends_at
    group by windows.campaign_id, windows.customer_id

),

final as (

    select
        windows.campaign_id,
        windows.customer_id,
        windows.arm,
        windows.assigned_at,
        windows.window_days,
        windows.window_ends_at,
        coalesce(orders_in_window.orders, 0) > 0 as has_ordered,
        coalesce(orders_in_window.orders, 0) as orders,
        coalesce(orders_in_window.revenue, 0) as revenue,
        coalesce(visits_in_window.visits, 0) > 0 as has_visited,
        coalesce(visits_in_window.visits, 0) as visits,
        coalesce(discount_in_window.redemptions, 0) as campaign_redemptions,
        coalesce(discount_in_window.discount, 0) as campaign_discount,

    from windows
    left join orders_in_window
        on windows.campaign_id = orders_in_window.campaign_id
        and windows.customer_id = orders_in_window.customer_id
    left join visits_in_window
        on windows.campaign_id = visits_in_window.campaign_id
        and windows.customer_id = visits_in_window.customer_id
    left join discount_in_window
        on windows.campaign_id = discount_in_window.campaign_id
        and windows.customer_id = discount_in_window.customer_id

)

select * from final
