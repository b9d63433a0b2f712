-- reads several models; Dagster shows it as a check on fct_campaign_funnel
{{ config(meta={'dagster': {'ref': {'name': 'fct_campaign_funnel'}}}) }}

-- Where a campaign requires acceptance the core refuses to redeem an unaccepted voucher, so
-- within a cohort no more vouchers can be redeemed than were accepted.
with

funnel as (

    select * from {{ ref('fct_campaign_funnel') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

)

select funnel.*
from funnel
inner join campaigns
    on funnel.campaign_id = campaigns.campaign_id
where campaigns.is_acceptance_required and funnel.redeemed > funnel.accepted
