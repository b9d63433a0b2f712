-- reads several models; Dagster shows it as a check on fct_campaign_performance
{{ config(meta={'dagster': {'ref': {'name': 'fct_campaign_performance'}}}) }}

-- A rollback gives back at most what its redemption gave: net discount is never negative,
-- per redemption or per campaign.
select redemption_id as id, net_discount as amount, 'redemption' as level
from {{ ref('fct_redemptions') }}
where net_discount < 0 or net_gift_amount < 0

union all

select campaign_id, attributed_discount, 'campaign'
from {{ ref('fct_campaign_performance') }}
where attributed_discount < 0
