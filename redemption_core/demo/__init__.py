"""`make demo-core`: the redemption core and distribution walkthrough on a fresh ledger.

May import the domain, the ledger, the engine and distribution.
"""
