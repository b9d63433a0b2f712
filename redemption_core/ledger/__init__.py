"""The ledger: the store port (store.py), the projection of events into current state written
once for every backend (projection/), the SQLite adapter (sqlite.py: connections,
transactions, group commit, checkpoints), the PostgreSQL adapter (postgres.py: exclusive and
concurrent writes, locks), the SQL both speak (dialect.py), replay and verify, reports, and
where state lives and which store opens it (home.py).

May import the domain only.
"""
