"""promoledger redemption core: campaigns, vouchers, rules, exactly-once redemption, ledger."""
