"""``ocs api``: the operator (MVNO) and portfolio (MVNA) HTTP API and its dashboards.

Thin adapters over the ledger (Redis, per-tenant ACL users) and the usage store (PostgreSQL,
per-tenant roles): every operator request runs on its tenant's own Redis user and store role,
so a scope bug in this package still ends in "permission denied" below it.
"""
