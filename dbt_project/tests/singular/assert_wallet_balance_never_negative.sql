-- A gift card cannot pay out more than it holds, so no balance in a wallet goes below zero.
select voucher_id, gift_balance
from {{ ref('int_vouchers_held') }}
where gift_balance < 0
