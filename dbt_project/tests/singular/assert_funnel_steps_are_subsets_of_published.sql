-- Every later funnel step counts vouchers of the row's published cohort, so none can exceed
-- published, and the three delivery states partition it. (Orderings between later steps do
-- not hold in general: redeemed > accepted where acceptance is not required, and the core
-- lets a holder accept an undelivered voucher.)
select *
from {{ ref('fct_campaign_funnel') }}
where
    delivered + delivery_failed + delivery_pending != published
    or opened > published
    or clicked > published
    or visited > published
    or accepted > published
    or redeemed > published
    or rejected > published
    or rolled_back > published
    or skipped != skipped_frequency_cap + skipped_no_consent + skipped_channel_unavailable
        + skipped_no_contact + skipped_unknown_customer + skipped_other
    or (channel != 'none' and (held_out > 0 or skipped > 0))
