"""The engine: every act on campaigns, vouchers, customers, orders and reviews, checked
against the rules and recorded as ledger events in one transaction (redemption.py is the
entry point, RedemptionEngine).

May import the domain and the ledger.
"""
