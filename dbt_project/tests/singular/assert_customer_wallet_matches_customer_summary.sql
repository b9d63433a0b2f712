-- reads several models; Dagster shows it as a check on dim_customers
{{ config(meta={'dagster': {'ref': {'name': 'dim_customers'}}}) }}

-- The Customer 360's wallet summary counts exactly the vouchers listed in the wallet.
with

wallet as (

    select customer_id, count(*) as active_vouchers
    from {{ ref('fct_customer_wallet') }}
    group by customer_id

)

select customers.customer_id, customers.active_vouchers, wallet.active_vouchers
from {{ ref('dim_customers') }} as customers
full outer join wallet
    on customers.customer_id = wallet.customer_id
where coalesce(customers.active_vouchers, 0) != coalesce(wallet.active_vouchers, 0)
