{#- Minor units as text the way the console writes money (redemption_core's money_text): the
    currency, thousands separators and the currency's decimals, e.g. 249000, 'EUR' →
    'EUR 2,490.00'. Exponents follow redemption_core/domain/money.py: 0 for CLP, ISK, JPY, KRW;
    3 for BHD, KWD. Without a currency, the number alone. -#}
{% macro format_money(amount, currency) -%}
    case
        when ({{ amount }}) is null then null
        else coalesce(({{ currency }}) || ' ', '') || case
            when ({{ currency }}) in ('CLP', 'ISK', 'JPY', 'KRW')
                then printf('%,d', ({{ amount }}))
            when ({{ currency }}) in ('BHD', 'KWD')
                then printf('%,.3f', ({{ amount }}) / 1000.0)
            else printf('%,.2f', ({{ amount }}) / 100.0)
        end
    end
{%- endmacro %}
