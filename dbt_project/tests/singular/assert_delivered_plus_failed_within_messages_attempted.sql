-- Every message (delivery run) ends delivered or failed, once: never more outcomes than sends.
select *
from {{ ref('fct_delivery_performance') }}
where delivered + failed > messages_attempted
    or retries < 0
