"""Imports: another system's history into the ledger, in the ledger's own schema
(ledger_schema.py, the schema of docs/ledger.md) or mapped from a known data set
(dunnhumby.py).

May import the domain, the ledger and the engine.
"""
