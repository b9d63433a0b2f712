-- One row per campaign and customer a distribution decided on, with the arm the customer
-- belongs to. The core puts a customer in a campaign's control group by a hash of (campaign,
-- customer), before any other check, so the arms are a random split of everyone decided:
-- "treatment" is everyone not held out, whether the offer was published or skipped (intent to
-- treat), "control" is everyone held out. An autopilot may decide on the same customer again
-- after its cool-down; the first decision is the assignment.
with

decisions as (

    select * from {{ ref('int_offers_decided') }}

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

per_customer as (

    select
        campaign_id,
        customer_id,
        arg_min(decision, (decided_at, decision_event_id)) as first_decision,
        min(decided_at) as assigned_at,
        count(*) as decisions,
        count(*) filter (where decision = 'held_out') as held_out_decisions,
        count(*) filter (where decision = 'skipped') as skipped_decisions,
        count(*) filter (where decision = 'published') as published_decisions,
        min(decided_at) filter (where decision = 'published') as first_published_at,

    from decisions
    group by campaign_id, customer_id

),

final as (

    select
        per_customer.campaign_id,
        per_customer.customer_id,
        case
            when per_customer.first_decision = 'held_out' then 'control' else 'treatment'
        end as arm,
        per_customer.assigned_at,
        per_customer.first_decision,
        per_customer.decisions,
        per_customer.held_out_decisions,
        per_customer.skipped_decisions,
        per_customer.published_decisions,
        per_customer.first_published_at,
        -- Never expected (the split is deterministic); true would mean the campaign's control
        -- share changed under it.
        per_customer.held_out_decisions > 0
        and per_customer.held_out_decisions < per_customer.decisions as has_switched_arms,
        coalesce(campaigns.has_control_group, false) as has_control_group,

    from per_customer
    left join campaigns
        on per_customer.campaign_id = campaigns.campaign_id

)

select * from final
