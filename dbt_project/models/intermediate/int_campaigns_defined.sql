with

events as (

    select * from {{ ref('stg_ledger__events') }}

),

main_campaigns as (

    select
        payload->'definition'->>'id' as main_campaign_id,
        payload->'definition'->>'name' as main_campaign_name,

    from events
    where event_type = 'main_campaign_created'
    -- A main campaign created twice keeps its latest name.
    qualify row_number() over (
        partition by payload->'definition'->>'id' order by occurred_at desc, event_seq desc
    ) = 1

),

created as (

    select
        campaign_id,
        occurred_at as created_at,
        payload->'definition' as definition,

    from events
    where event_type = 'campaign_created'
    qualify row_number() over (partition by campaign_id order by event_seq) = 1

),

-- An imported history may hold out a control group whose definition has no distribution
-- section (the source system decided the split): its held-out customers say it has one.
held_out as (

    select distinct campaign_id
    from events
    where event_type = 'customer_held_out'

),

latest_status as (

    select
        campaign_id,
        payload->>'status' as status,
        occurred_at as status_changed_at,

    from events
    where event_type = 'campaign_status_changed'
    qualify row_number() over (
        partition by campaign_id order by occurred_at desc, event_seq desc
    ) = 1

),

parsed as (

    select
        created.campaign_id,
        definition->>'name' as campaign_name,
        definition->>'main_campaign' as main_campaign_id,
        definition->'voucher'->>'kind' as voucher_kind,
        definition->'voucher'->>'code' as standalone_code,
        cast(definition->'voucher'->>'gift_balance' as bigint) as gift_card_initial_balance,
        definition->'discount'->>'type' as discount_type,
        cast(definition->'discount'->>'amount_off' as bigint) as discount_amount_off,
        cast(definition->'discount'->>'percent_off' as double) as discount_percent_off,
        cast(definition->'discount'->>'max_discount' as bigint) as discount_max_discount,
        cast(definition->'discount'->>'fixed_price' as bigint) as discount_fixed_price,
        definition->'discount'->>'product' as discount_free_product,
        definition->>'currency' as currency,
        cast(definition->'limits'->>'budget' as bigint) as budget_cap,
        cast(definition->'limits'->>'per_customer' as bigint) as per_customer_limit,
        -- A unique code is single-use unless the definition says otherwise (the core's default).
        coalesce(
            cast(definition->'limits'->>'per_voucher' as bigint),
            case when definition->'voucher'->>'kind' = 'unique' then 1 end
        ) as per_voucher_limit,
        cast(definition->'limits'->>'campaign_total' as bigint) as campaign_total_limit,
        cast(definition->'rules'->>'min_order_amount' as bigint) as min_order_amount,
        coalesce(
            cast(definition->'rules'->>'acceptance_required' as boolean), false
        ) as is_acceptance_required,
        cast(
            definition->'rules'->>'valid_days_after_publication' as integer
        ) as valid_days_after_publication,
        definition->'distribution'->>'mode' as distribution_mode,
        definition->'distribution'->>'segment' as distribution_segment,
        cast(definition->'distribution'->'channels' as varchar[]) as distribution_channels,
        definition->'distribution'->'trigger'->>'type' as trigger_type,
        cast(definition->'distribution'->>'control_share' as double) as control_share,
        cast(definition->>'active_from' as timestamptz) at time zone 'UTC' as active_from,
        cast(definition->>'active_until' as timestamptz) at time zone 'UTC' as active_until,
        created.created_at,
        definition->>'status' as initial_status,
        definition,

    from created

),

final as (

    select
        parsed.campaign_id,
        parsed.campaign_name,
        parsed.main_campaign_id,
        main_campaigns.main_campaign_name,
        parsed.voucher_kind,
        parsed.voucher_kind = 'gift' as is_gift_card,
        parsed.standalone_code,
        parsed.gift_card_initial_balance,
        parsed.discount_type,
        -- One headline number per discount: minor units for amount_off and fixed_price,
        -- percent for percent_off; null where the discount has none (free_item, gift cards).
        case parsed.discount_type
            when 'amount' then cast(parsed.discount_amount_off as double)
            when 'percent' then parsed.discount_percent_off
            when 'fixed_price' then cast(parsed.discount_fixed_price as double)
        end as discount_value,
        parsed.discount_amount_off,
        parsed.discount_percent_off,
        parsed.discount_max_discount,
        parsed.discount_fixed_price,
        parsed.discount_free_product,
        parsed.currency,
        parsed.budget_cap,
        parsed.per_customer_limit,
        parsed.per_voucher_limit,
        parsed.campaign_total_limit,
        parsed.min_order_amount,
        parsed.is_acceptance_required,
        parsed.valid_days_after_publication,
        parsed.distribution_mode,
        parsed.distribution_segment,
        parsed.distribution_channels,
        parsed.trigger_type,
        parsed.control_share,
        coalesce(parsed.control_share, 0) > 0 or held_out.campaign_id is not null
            as has_control_group,
        parsed.active_from,
        parsed.active_until,
        parsed.created_at,
        parsed.initial_status,
        coalesce(latest_status.status, parsed.initial_status) as status,
        coalesce(latest_status.status_changed_at, parsed.created_at) as status_since,
        parsed.definition,

    from parsed
    left join main_campaigns
        on parsed.main_campaign_id = main_campaigns.main_campaign_id
    left join latest_status
        on parsed.campaign_id = latest_status.campaign_id
    left join held_out
        on parsed.campaign_id = held_out.campaign_id

)

select * from final
