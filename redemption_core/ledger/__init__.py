"""The ledger: the store port (store.py), the projection of events into current state written
once for every backend (projection/), the SQLite adapter (sqlite.py: connections,
transactions, group commit, checkpoints), replay and verify, reports, and where state lives
(home.py).

May import the domain only.
"""
