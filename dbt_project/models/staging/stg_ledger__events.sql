with

source as (

    select * from {{ source('ledger', 'events') }}

),

renamed as (

    select
        seq as event_seq,
        event_id,
        event_type,
        cast(occurred_at as timestamp) as occurred_at,
        cast(recorded_at as timestamp) as recorded_at,
        cast(event_date as date) as event_date,
        campaign_id,
        voucher_id,
        customer_id,
        order_id,
        channel,
        redemption_id,
        idempotency_key,
        device_hash,
        ip_hash,
        payment_hash,
        store_id,
        staff_id,
        sales_channel,
        cast(payload as json) as payload,

    from source

)

select * from renamed
