-- The instant every "as of" figure is measured at: the latest event in the ledger, never
-- now(), because a simulated or imported ledger lives in the past. And how far the ledger's
-- knowledge reaches: up to when it was last written (the latest recorded_at), not only up to
-- its latest event: a history imported today says that nothing happened after its last event
-- until today.
-- Read from the raw layer, not stg_ledger__events: the ledger's timestamps sort as text (the
-- raw check stops any other format), so only the two ends are parsed, not every event's.
with

events as (

    select occurred_at, recorded_at from {{ source('ledger', 'events') }}

),

final as (

    select
        cast(max(occurred_at) as timestamp) as as_of,
        cast(min(occurred_at) as timestamp) as first_occurred_at,
        -- an event may be stamped a little after it is stored (clock skew between tills)
        cast(greatest(max(recorded_at), max(occurred_at)) as timestamp) as known_until,
        count(*) as events,

    from events

)

select * from final
