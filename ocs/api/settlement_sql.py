"""The settlement queries of the API (schema: ``usage/migrations/0100_settlement.sql`` and
``0204_settlement_statement_views.sql``). Values are bound parameters.

The operator's queries run on the tenant's own role: ``settlement_statements``' row-level
security answers its rows only, whatever the WHERE clause says. The portfolio's run on
``ocs_portfolio``, which reads every row."""

from __future__ import annotations

from typing import Final

STATEMENT_COLUMNS: Final = "month, issued_at, amount_due, currency, figures, view"
TENANT_STATEMENTS: Final = f"""
SELECT {STATEMENT_COLUMNS} FROM settlement_statements
WHERE tenant = %(tenant)s ORDER BY month DESC LIMIT %(limit)s
"""
TENANT_STATEMENT: Final = f"""
SELECT {STATEMENT_COLUMNS} FROM settlement_statements
WHERE tenant = %(tenant)s AND month = %(month)s
"""

# One row per host MNO and month, newest month first; ``month`` NULL: every month.
PERIOD_STATUS: Final = """
SELECT host_mno, month, state, currency, identity FROM settlement_periods
WHERE (%(month)s::text IS NULL OR month = %(month)s)
ORDER BY month DESC, host_mno LIMIT %(limit)s
"""
# Per operator and month: the host MNOs its records were allocated to, their periods' states
# and the wholesale allocated (from the last reconciliation).
OPERATOR_PERIODS: Final = """
SELECT a.tenant, p.month, array_agg(DISTINCT p.host_mno ORDER BY p.host_mno),
       array_agg(DISTINCT p.state), coalesce(sum(a.wholesale), 0)::bigint
FROM settlement_allocations a JOIN settlement_periods p ON p.id = a.period_id
WHERE p.month = ANY(%(months)s)
GROUP BY a.tenant, p.month ORDER BY p.month DESC, a.tenant
"""
OPERATOR_STATEMENTS: Final = """
SELECT tenant, month, issued_at, amount_due, currency FROM settlement_statements
WHERE month = ANY(%(months)s)
"""
