-- The core refuses a redemption that would take a campaign's discount past limits.budget.
select *
from {{ ref('fct_campaign_budget') }}
where budget_cap is not null and budget_used > budget_cap
