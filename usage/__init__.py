"""The usage store of record: rated usage and ledger records in PostgreSQL, per tenant.

Owns the schema (versioned migrations), tenant isolation in the database, the store API the
exporter writes through, retention, and the export files for billing systems. ``ocs`` wires it;
nothing here imports ``ocs``.
"""
