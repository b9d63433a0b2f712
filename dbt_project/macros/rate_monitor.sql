{#-
A monitor of a rate of bad outcomes (delivery failures, rejected redemptions) over the recent
window, judged against its own baseline (every earlier day) and against fixed ceilings. Used by
fct_campaign_health (per campaign) and fct_system_health (the whole ledger); the console and
the Dagster asset checks show the status and the rule these macros write, never their own.

Significance comes from the Wilson score lower bound of the recent rate (one-sided; 99 % for a
warning, 99.9 % for a failure): "at least this high, with that confidence". A rate that is
higher only by the luck of a handful of outcomes raises nothing; a real jump over enough
attempts does, however low the rate was before.

  ok       fewer than min_outcomes recent outcomes (too few to judge), or no rule below holds
  failing  at least failing_min_bad bad outcomes, and either the rate is at least
           failing_ratio x the baseline with its 99.9 % lower bound above the baseline, or
           its 99.9 % lower bound is at or above the failing ceiling
  warning  the same with warning_min_bad, warning_ratio, 99 % and the warning ceiling
A baseline counts once it has min_baseline_outcomes outcomes.
-#}

{% macro rate_monitor_rules() -%}
    {{ return({
        'min_outcomes': 20,
        'min_baseline_outcomes': 100,
        'warning_min_bad': 3,
        'failing_min_bad': 5,
        'warning_ratio': 1.5,
        'failing_ratio': 3.0,
        'warning_z': 2.326,
        'failing_z': 3.090,
    }) }}
{%- endmacro %}


{#- The Wilson score interval's lower end for bad / total at the one-sided z. -#}
{% macro wilson_lower(bad, total, z) -%}
    (case when ({{ total }}) > 0 then (
        ({{ bad }})::double / ({{ total }}) + pow({{ z }}, 2) / (2.0 * ({{ total }}))
        - {{ z }} * sqrt(
            ({{ bad }})::double / ({{ total }}) * (1 - ({{ bad }})::double / ({{ total }}))
            / ({{ total }})
            + pow({{ z }}, 2) / (4.0 * pow(({{ total }}), 2))
        )
    ) / (1 + pow({{ z }}, 2) / ({{ total }})) end)
{%- endmacro %}


{% macro _rate_breaks(level, bad, total, base_bad, base_total, ceiling) -%}
    {%- set r = rate_monitor_rules() -%}
    {%- set z = r[level ~ '_z'] -%}
    (
        ({{ bad }}) >= {{ r[level ~ '_min_bad'] }}
        and (
            {{ wilson_lower(bad, total, z) }} >= {{ ceiling }}
            or (
                ({{ base_total }}) >= {{ r.min_baseline_outcomes }}
                and ({{ bad }})::double / ({{ total }})
                    >= {{ r[level ~ '_ratio'] }} * ({{ base_bad }})::double / ({{ base_total }})
                and {{ wilson_lower(bad, total, z) }}
                    > ({{ base_bad }})::double / ({{ base_total }})
            )
        )
    )
{%- endmacro %}


{#- 'ok', 'warning' or 'failing' for bad / total in the recent window against base_bad /
    base_total before it; the ceilings are rates (0.10 for 10 %). -#}
{% macro rate_monitor_status(bad, total, base_bad, base_total, warning_ceiling, failing_ceiling) -%}
    {%- set r = rate_monitor_rules() -%}
    case
        when coalesce(({{ total }}), 0) < {{ r.min_outcomes }} then 'ok'
        when {{ _rate_breaks('failing', bad, total, base_bad, base_total, failing_ceiling) }}
            then 'failing'
        when {{ _rate_breaks('warning', bad, total, base_bad, base_total, warning_ceiling) }}
            then 'warning'
        else 'ok'
    end
{%- endmacro %}


{#- The rule behind rate_monitor_status, with the figures, e.g. "failure rate 4.0 % (40 of
    1,000 deliveries) in 7 days against a 1.0 % baseline (14 of 1,381): 4.0x; failing: 4.0x
    the baseline (the rule: 3x) and at least 2.5 % with 99.9 % confidence, above the
    baseline". `rate` names the rate, `noun` the outcomes, `bad_noun` the bad ones. -#}
{% macro rate_monitor_rule(
    rate, noun, bad_noun, window, bad, total, base_bad, base_total, warning_ceiling, failing_ceiling
) -%}
    {%- set r = rate_monitor_rules() -%}
    {%- set status = rate_monitor_status(
        bad, total, base_bad, base_total, warning_ceiling, failing_ceiling
    ) -%}
    {%- set recent_rate = '((' ~ bad ~ ')::double / (' ~ total ~ '))' -%}
    {%- set base_rate = '((' ~ base_bad ~ ')::double / nullif((' ~ base_total ~ '), 0))' -%}
    {%- set has_baseline = '((' ~ base_total ~ ') >= ' ~ r.min_baseline_outcomes ~ ')' -%}
    case
        when coalesce(({{ total }}), 0) < {{ r.min_outcomes }} then format(
            'ok: {} {} in {}, too few to judge the {} (it takes {})',
            coalesce(({{ total }}), 0), '{{ noun }}', '{{ window }}', '{{ rate }}',
            {{ r.min_outcomes }}
        )
        else concat(
            format(
                '{} {:.1f} % ({:,} of {:,} {}) in {}', '{{ rate }}', 100 * {{ recent_rate }},
                ({{ bad }}), ({{ total }}), '{{ noun }}', '{{ window }}'
            ),
            case when {{ has_baseline }} then format(
                ' against a {:.1f} % baseline ({:,} of {:,})',
                100 * {{ base_rate }}, ({{ base_bad }}), ({{ base_total }})
            ) else format(
                ' with no baseline yet (it takes {} earlier {})',
                {{ r.min_baseline_outcomes }}, '{{ noun }}'
            ) end,
            case {{ status }}
{%- for level, confidence in [('failing', '99.9 %'), ('warning', '99 %')] %}
                when '{{ level }}' then case
                    when {{ wilson_lower(bad, total, r[level ~ '_z']) }}
                        >= {{ failing_ceiling if level == 'failing' else warning_ceiling }}
                        then format(
                            '; {}: at least {:.1f} % with {} confidence, at or above the {:.0f} '
                            || '% ceiling',
                            '{{ level }}', 100 * {{ wilson_lower(bad, total, r[level ~ '_z']) }},
                            '{{ confidence }}',
                            100 * {{ failing_ceiling if level == 'failing' else warning_ceiling }}
                        )
                    else format(
                        '; {}: {:.1f}x the baseline (the rule: {}x) and at least {:.1f} % with {} '
                        || 'confidence, above the baseline',
                        '{{ level }}', {{ recent_rate }} / {{ base_rate }},
                        {{ r[level ~ '_ratio'] }},
                        100 * {{ wilson_lower(bad, total, r[level ~ '_z']) }}, '{{ confidence }}'
                    )
                end
{%- endfor %}
                else concat(
                    '; ok: ',
                    case
                        when ({{ bad }}) < {{ r.warning_min_bad }} then format(
                            'only {} {}, too few to tell from chance', ({{ bad }}), '{{ bad_noun }}'
                        )
                        when {{ has_baseline }}
                            and {{ wilson_lower(bad, total, r.warning_z) }} <= {{ base_rate }}
                            then format(
                                'with 99 % confidence only at least {:.1f} %, not clearly above '
                                || 'the baseline',
                                100 * {{ wilson_lower(bad, total, r.warning_z) }}
                            )
                        when {{ has_baseline }} then format(
                            '{:.1f}x the baseline, under {}x', {{ recent_rate }} / {{ base_rate }},
                            {{ r.warning_ratio }}
                        )
                        else format(
                            'under the {:.0f} % ceiling with 99 % confidence',
                            100 * {{ warning_ceiling }}
                        )
                    end,
                    format(
                        '. A warning takes at least {} {} and {}x the baseline or {:.0f} %, both '
                        || 'with 99 % confidence',
                        {{ r.warning_min_bad }}, '{{ bad_noun }}', {{ r.warning_ratio }},
                        100 * {{ warning_ceiling }}
                    )
                )
            end
        )
    end
{%- endmacro %}
