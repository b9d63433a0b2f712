-- reads several models; Dagster shows it as a check on fct_campaign_performance
{{ config(meta={'dagster': {'ref': {'name': 'fct_campaign_performance'}}}) }}

-- Budget used, attributed discount and the console's discount are one figure, computed
-- three ways: discount redeemed less discount rolled back.
with

budget as (

    select * from {{ ref('fct_campaign_budget') }}

),

performance as (

    select * from {{ ref('fct_campaign_performance') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

redemptions as (

    select campaign_id, sum(net_discount) as net_discount,
    from {{ ref('fct_redemptions') }}
    group by campaign_id

)

select
    campaigns.campaign_id,
    budget.budget_used,
    performance.attributed_discount,
    campaigns.discount_net,
    redemptions.net_discount,
from campaigns
inner join budget on campaigns.campaign_id = budget.campaign_id
inner join performance on campaigns.campaign_id = performance.campaign_id
left join redemptions on campaigns.campaign_id = redemptions.campaign_id
where
    budget.budget_used != performance.attributed_discount
    or budget.budget_used != campaigns.discount_net
    or budget.budget_used != coalesce(redemptions.net_discount, 0)
