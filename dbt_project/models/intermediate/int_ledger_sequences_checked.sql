-- Sequence numbers are AUTOINCREMENT and never reused, so a gap between the lowest and the
-- highest seq in the warehouse is an event the extract missed. The seqs are unique here (the
-- raw batch check stops a duplicate before dbt runs, and the timeline's unique test would
-- catch one after), so counting rows is counting seqs: a count(distinct) over the whole
-- ledger cost ~1 s of every nightly build at 10M events.
-- Read from the raw layer, not stg_ledger__events: the ledger's timestamps sort as text (the
-- raw check stops any other format), so only the latest two are parsed, not every event's.
with

events as (

    select seq, occurred_at, recorded_at from {{ source('ledger', 'events') }}

),

final as (

    select
        count(*) as ledger_events,
        min(seq) as min_event_seq,
        max(seq) as max_event_seq,
        coalesce(max(seq) - min(seq) + 1 - count(*), 0) as missing_seqs,
        cast(max(occurred_at) as timestamp) as last_occurred_at,
        cast(max(recorded_at) as timestamp) as last_recorded_at,

    from events

)

select * from final
