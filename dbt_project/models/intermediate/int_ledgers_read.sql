-- The instant every "as of" figure is measured at: the latest event in the ledger, never
-- now(), because a simulated or imported ledger lives in the past.
with

events as (

    select * from {{ ref('stg_ledger__events') }}

),

final as (

    select
        max(occurred_at) as as_of,
        min(occurred_at) as first_occurred_at,
        count(*) as events,

    from events

)

select * from final
