{#- Minor units as text in their currency's major unit, e.g. 2490, 'EUR' → '24.90 EUR'.
    Exponents follow redemption_core/money.py: 0 for CLP, ISK, JPY, KRW; 3 for BHD, KWD. -#}
{% macro format_money(amount, currency) -%}
    case
        when ({{ amount }}) is null then null
        when ({{ currency }}) in ('CLP', 'ISK', 'JPY', 'KRW')
            then printf('%d', ({{ amount }}))
        when ({{ currency }}) in ('BHD', 'KWD')
            then printf('%.3f', ({{ amount }}) / 1000.0)
        else printf('%.2f', ({{ amount }}) / 100.0)
    end
    || coalesce(' ' || ({{ currency }}), '')
{%- endmacro %}
