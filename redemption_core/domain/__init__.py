"""The domain: campaigns, vouchers and codes, discounts, rules and reason codes, money,
orders, customers, segments, offers, ledger events, and the read models of the projection
that rules evaluate against.

Pure: no files, no databases, no network, no clock but the one passed in. It imports nothing
from the other subpackages; everything else imports it.
"""
