-- Without a control group there is nothing to compare against: incremental figures are null,
-- not zero; with one, every interval contains its estimate.
select *
from {{ ref('fct_campaign_performance') }}
where
    (
        not has_control_group
        and (
            incremental_treated_customers is not null
            or incremental_conversion is not null
            or incremental_revenue is not null
            or incremental_profit is not null
        )
    )
    or incremental_conversion not between incremental_conversion_ci_low
        and incremental_conversion_ci_high
    or incremental_revenue not between incremental_revenue_ci_low and incremental_revenue_ci_high
    or incremental_profit not between incremental_profit_ci_low and incremental_profit_ci_high
