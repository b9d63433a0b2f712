-- The instant every "as of" figure is measured at: the latest event in the ledger, never
-- now(), because a simulated or imported ledger lives in the past.
-- Read from the raw layer, not stg_ledger__events: the ledger's timestamps sort as text (the
-- raw check stops any other format), so only the two ends are parsed, not every event's.
with

events as (

    select occurred_at from {{ source('ledger', 'events') }}

),

final as (

    select
        cast(max(occurred_at) as timestamp) as as_of,
        cast(min(occurred_at) as timestamp) as first_occurred_at,
        count(*) as events,

    from events

)

select * from final
