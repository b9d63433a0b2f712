-- Contacts are only ever the masked forms the ledger carries; the hashes and raw addresses
-- are not exposed. A customer_updated event changes only the keys it carries.
with

events as (

    select * from {{ ref('stg_ledger__events') }}
    where event_type in ('customer_created', 'customer_updated', 'consent_changed')

),

created as (

    select
        customer_id,
        event_seq,
        occurred_at as created_at,
        coalesce(
            cast(payload->>'signup_at' as timestamptz) at time zone 'UTC', occurred_at
        ) as signup_at,
        payload->>'birthday' as birthday,
        payload->>'anniversary' as anniversary,
        payload->'attributes'->>'store' as home_store,
        payload->'consent' as consent,

    from events
    where event_type = 'customer_created'

),

contact_changes as (

    select
        customer_id,
        event_seq,
        json_exists(payload, '$.email_masked') as has_email,
        payload->>'email_masked' as email_masked,
        json_exists(payload, '$.phone_masked') as has_phone,
        payload->>'phone_masked' as phone_masked,

    from events
    where event_type in ('customer_created', 'customer_updated')

),

contacts as (

    select
        customer_id,
        arg_max(email_masked, event_seq) filter (where has_email) as email_masked,
        arg_max(phone_masked, event_seq) filter (where has_phone) as phone_masked,

    from contact_changes
    group by customer_id

),

consent_changes as (

    -- the consent given at creation, then every change, in ledger order
    select
        created.customer_id,
        created.event_seq,
        created.created_at as occurred_at,
        channels.channel,
        cast(created.consent->>channels.channel as boolean) as is_granted,

    from created
    cross join (values ('email'), ('sms'), ('push')) as channels (channel)
    where created.consent->>channels.channel is not null

    union all

    select
        customer_id,
        event_seq,
        occurred_at,
        payload->>'channel' as channel,
        cast(payload->>'granted' as boolean) as is_granted,

    from events
    where event_type = 'consent_changed'

),

consent as (

    select
        customer_id,
        coalesce(arg_max(is_granted, event_seq) filter (where channel = 'email'), false)
            as has_email_consent,
        coalesce(arg_max(is_granted, event_seq) filter (where channel = 'sms'), false)
            as has_sms_consent,
        coalesce(arg_max(is_granted, event_seq) filter (where channel = 'push'), false)
            as has_push_consent,
        max(occurred_at) as consent_updated_at,

    from consent_changes
    group by customer_id

),

final as (

    select
        created.customer_id,
        created.created_at,
        created.signup_at,
        created.birthday,
        created.anniversary,
        created.home_store,
        contacts.email_masked,
        contacts.phone_masked,
        -- No consent given (a customer added with only an id and an address) is no consent.
        coalesce(consent.has_email_consent, false) as has_email_consent,
        coalesce(consent.has_sms_consent, false) as has_sms_consent,
        coalesce(consent.has_push_consent, false) as has_push_consent,
        consent.consent_updated_at,

    from created
    left join contacts
        on created.customer_id = contacts.customer_id
    left join consent
        on created.customer_id = consent.customer_id

)

select * from final
