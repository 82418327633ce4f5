"""The settlement queries, in one place (the schema and the period membership function are in
``usage/migrations/0100_settlement.sql``). Every value is a bound parameter."""

from __future__ import annotations

from typing import Final

# A tuple of statements is run one by one (a prepared statement holds one command).

SETTLEMENT_ROLE: Final = "ocs_settlement"

OPEN_PERIOD: Final = """
INSERT INTO settlement_periods (host_mno, month, timezone, month_start, month_end, currency,
    home_zone, default_zone, zone_plmns, zone_plmn_names, zone_mccs, zone_mcc_names)
VALUES (%(mno)s, %(month)s, %(tz)s, %(start)s, %(end)s, %(currency)s, %(home)s, %(default)s,
    %(plmns)s, %(plmn_zones)s, %(mccs)s, %(mcc_zones)s)
ON CONFLICT (host_mno, month) DO NOTHING
RETURNING id
"""

PERIOD: Final = """
SELECT id, state, invoice_file, detail_services, cutoff, identity
FROM settlement_periods WHERE host_mno = %s AND month = %s
FOR UPDATE
"""

PERIOD_READ: Final = """
SELECT id, state, invoice_file, detail_services, cutoff, identity
FROM settlement_periods WHERE host_mno = %s AND month = %s
"""

SET_STATE: Final = "UPDATE settlement_periods SET state = %s WHERE id = %s"

ADD_TRANSITION: Final = """
INSERT INTO settlement_transitions (period_id, seq, from_state, to_state, event, actor, at, note)
SELECT %(pid)s, coalesce(max(seq), 0) + 1, %(from)s, %(to)s, %(event)s, %(actor)s, %(at)s, %(note)s
FROM settlement_transitions WHERE period_id = %(pid)s
"""

TRANSITIONS: Final = """
SELECT seq, from_state, to_state, event, actor, at, note
FROM settlement_transitions WHERE period_id = %s ORDER BY seq
"""

DELETE_INVOICE: Final = "DELETE FROM settlement_invoice_lines WHERE period_id = %s"
COPY_INVOICE: Final = """
COPY settlement_invoice_lines (period_id, line, day, service, zone, quantity, amount) FROM STDIN
"""
SET_INVOICE_FILE: Final = "UPDATE settlement_periods SET invoice_file = %s WHERE id = %s"

# -- detail files: COPY into a text staging table, check every field in SQL, then convert ------

CREATE_DETAIL_STAGE: Final = """
CREATE TEMP TABLE settle_detail_stage (
    line bigint GENERATED ALWAYS AS IDENTITY,
    record_id text, imsi text, service text, zone text, started_at text,
    quantity text, unit text, amount text, currency text
) ON COMMIT DROP
"""
DETAIL_COLUMNS: Final = (
    "record_id",
    "imsi",
    "service",
    "zone",
    "started_at",
    "quantity",
    "unit",
    "amount",
    "currency",
)
COPY_DETAIL: Final = """
COPY settle_detail_stage (record_id, imsi, service, zone, started_at, quantity, unit, amount,
    currency) FROM STDIN WITH (FORMAT csv, HEADER true)
"""
# One row per bad field, in file order (line + 1: the header is line 1). Each field is checked
# once per record; only the records with a problem are expanded into one row per field.
DETAIL_PROBLEMS: Final = r"""
WITH checked AS (
    SELECT s.*, svc.name AS svc_name, svc.unit AS svc_unit,
        (coalesce(s.record_id, '') <> '' AND length(s.record_id) <= 128) AS id_ok,
        coalesce(s.imsi, '') ~ '^[0-9]{5,15}$' AS imsi_ok,
        svc.name IS NOT NULL AS service_ok,
        coalesce(s.zone, '') = ANY(%(zones)s::text[]) AS zone_ok,
        coalesce(s.started_at, '') ~ (
            '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?'
            || '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$') AS at_ok,
        coalesce(s.quantity, '') ~ '^[0-9]{1,18}$' AS quantity_ok,
        (svc.name IS NULL OR s.unit IS NOT DISTINCT FROM svc.unit) AS unit_ok,
        coalesce(s.amount, '') ~ '^-?[0-9]{1,13}(\.[0-9]{1,6})?$' AS amount_ok,
        s.currency IS NOT DISTINCT FROM %(currency)s AS currency_ok
    FROM settle_detail_stage s
    LEFT JOIN unnest(%(services)s::text[], %(units)s::text[]) AS svc(name, unit)
           ON svc.name = s.service
), bad AS (
    SELECT * FROM checked
    WHERE NOT (id_ok AND imsi_ok AND service_ok AND zone_ok AND at_ok AND quantity_ok
               AND unit_ok AND amount_ok AND currency_ok)
    ORDER BY line
    LIMIT %(limit)s
)
SELECT line + 1, field, message FROM bad
CROSS JOIN LATERAL (VALUES
    ('record_id', CASE WHEN NOT id_ok THEN 'must be 1..128 characters' END),
    ('imsi', CASE WHEN NOT imsi_ok
                  THEN quote_literal(coalesce(imsi, '')) || ' is not an IMSI (5-15 digits)' END),
    ('service', CASE WHEN NOT service_ok
                     THEN quote_literal(coalesce(service, ''))
                          || ' is not a service of the MNO' END),
    ('zone', CASE WHEN NOT zone_ok
                  THEN quote_literal(coalesce(zone, '')) || ' is not a zone of the MNO' END),
    ('started_at', CASE WHEN NOT at_ok
                        THEN quote_literal(coalesce(started_at, ''))
                             || ' is not an ISO 8601 time with an offset' END),
    ('quantity', CASE WHEN NOT quantity_ok
                      THEN quote_literal(coalesce(quantity, '')) || ' is not a whole number' END),
    ('unit', CASE WHEN NOT unit_ok
                  THEN quote_literal(coalesce(unit, '')) || ': ' || service
                       || ' is counted in ' || svc_unit END),
    ('amount', CASE WHEN NOT amount_ok
                    THEN quote_literal(coalesce(amount, ''))
                         || ' is not an amount (at most 6 decimals)' END),
    ('currency', CASE WHEN NOT currency_ok
                      THEN quote_literal(coalesce(currency, '')) || ': the MNO invoices in '
                           || %(currency)s END)
) AS v(field, message)
WHERE v.message IS NOT NULL
ORDER BY 1, 2
LIMIT %(limit)s
"""
DETAIL_DUPLICATE_IDS: Final = """
SELECT min(line) + 1, max(line) + 1, record_id FROM settle_detail_stage
GROUP BY record_id HAVING count(*) > 1 ORDER BY 1 LIMIT %(limit)s
"""
DELETE_DETAIL: Final = "DELETE FROM settlement_detail_records WHERE period_id = %s"
# OFFSET 0 keeps the subquery: the time is parsed once per record, not once per use.
INSERT_DETAIL: Final = """
INSERT INTO settlement_detail_records
    (period_id, line, record_ref, imsi, service, zone, started_at, t, day, quantity, amount)
SELECT %(pid)s, line + 1, record_id, imsi, service, zone, at,
       floor(extract(epoch FROM at))::bigint, (at AT TIME ZONE %(tz)s)::date,
       quantity::bigint, (amount::numeric * 1000000)::bigint
FROM (SELECT *, started_at::timestamptz AS at FROM settle_detail_stage OFFSET 0) AS s
"""
SET_DETAIL_SERVICES: Final = """
UPDATE settlement_periods SET detail_services = ARRAY(
    SELECT DISTINCT service FROM settlement_detail_records WHERE period_id = %(pid)s ORDER BY 1)
WHERE id = %(pid)s
RETURNING detail_services
"""

# -- reconciliation ----------------------------------------------------------------------------

SET_CUTOFF: Final = "UPDATE settlement_periods SET cutoff = now() WHERE id = %s"
# What settlement_records needs to know of a period (the tenant role may read this view).
PERIOD_FACTS: Final = """
SELECT id, host_mno, state, timezone, month_start, month_end, cutoff, prev_cutoff, home_zone,
       default_zone, zone_plmns, zone_plmn_names, zone_mccs, zone_mcc_names
FROM settlement_period_states
"""
CLEAR_RESULTS: Final = (
    """
DELETE FROM settlement_discrepancies WHERE period_id = %(pid)s
""",
    """
DELETE FROM settlement_allocations WHERE period_id = %(pid)s
""",
)
# The period's records, read once from usage_records into a narrow temporary table: every
# later step reads this snapshot (a month's usage_records is read once per reconciliation, not
# once per step). ``{records}`` is ``settlement_records(<the period's facts as constants>)``
# (usage/settle_rows.py records_call): constants let the planner prune partitions and scan
# them with parallel workers. The matching key (IMSI, start second, our ref) is kept for the
# services with detail only; the others are reconciled by cell.
# No ANALYZE of it: every statement that reads it aggregates or joins it with a small table,
# hash plans either way (sampling it cost a tenth of the step).
SNAPSHOT: Final = """
CREATE TEMP TABLE settle_snapshot ON COMMIT DROP AS
SELECT tenant, service, unit, day, zone, quantity, amount,
       CASE WHEN covered THEN imsi END AS imsi, CASE WHEN covered THEN t END AS t,
       CASE WHEN covered THEN ref END AS ref
FROM (SELECT r.*, r.service = ANY(%(covered)s::text[]) AS covered FROM {records} AS r) AS r
"""
CREATE_CELLS: Final = """
CREATE TEMP TABLE settle_cells ON COMMIT DROP AS
SELECT tenant, day, service, zone, max(unit) AS unit, count(*) AS records,
       sum(quantity)::bigint AS quantity, sum(amount)::bigint AS amount
FROM settle_snapshot
GROUP BY tenant, day, service, zone
"""
ALLOCATE: Final = """
INSERT INTO settlement_allocations (period_id, tenant, service, unit, records, quantity, wholesale)
SELECT %(pid)s, tenant, service, max(unit), sum(records), sum(quantity), sum(amount)
FROM settle_cells GROUP BY tenant, service
"""
RECORD_COUNT: Final = "SELECT coalesce(sum(records), 0)::bigint FROM settle_cells"
OUR_CELLS: Final = """
SELECT tenant, day::text, service, zone, quantity, amount
FROM settle_cells WHERE NOT service = ANY(%(covered)s::text[])
"""
INVOICE_LINES: Final = """
SELECT line, day::text, service, zone, quantity, amount
FROM settlement_invoice_lines WHERE period_id = %s ORDER BY line
"""
DETAIL_CELLS: Final = """
SELECT day::text, service, zone, sum(quantity)::bigint, sum(amount)::bigint
FROM settlement_detail_records WHERE period_id = %(pid)s
GROUP BY day, service, zone
"""
INSERT_DISCREPANCY: Final = """
INSERT INTO settlement_discrepancies (period_id, level, kind, owner, day, service, zone,
    our_quantity, their_quantity, our_amount, their_amount, delta, disputable, evidence)
VALUES (%s, %s, %s, %s, %s::date, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# Record matching (settlement/matching.py states the rules; this is the same in SQL).
MATCH_SETUP: Final = (
    """
CREATE TEMP TABLE m_pairs (our_ref text NOT NULL, their_id bigint NOT NULL, same boolean NOT NULL,
                           tenant text NOT NULL, oq bigint NOT NULL, oa bigint NOT NULL)
ON COMMIT DROP
""",
    """
CREATE TEMP TABLE m_tol ON COMMIT DROP AS
SELECT * FROM unnest(%(tol_services)s::text[], %(tol_qa)s::bigint[], %(tol_qp)s::bigint[],
                     %(tol_ma)s::bigint[], %(tol_mp)s::bigint[]) AS u(service, qa, qp, ma, mp)
""",
)
# Round 0, in one pass that keeps nothing of the agreeing bulk: both sides' records in one
# hash aggregate by (IMSI, service, start second). A key held by exactly one record on each side
# is a pair greedy takes (its Δstart 0 is unbeatable and unshared); when the two agree exactly
# it is no discrepancy and is dropped here. What remains (pairs that differ, keys of one side
# only, keys held twice) is small: the records behind it go to the later rounds. One aggregate
# over both sides instead of one per side and a join: half the hashing, and no per-key text
# state (our ref and tenant are fetched from the snapshot for the few keys left).
MATCH_KEYS: Final = """
CREATE TEMP TABLE m_keys ON COMMIT DROP AS
SELECT imsi, service, t, nullif(count(*) FILTER (WHERE theirs IS NULL), 0) AS on_,
       nullif(count(theirs), 0) AS tn, min(theirs) AS id
FROM (SELECT imsi, service, t, NULL::bigint AS theirs, quantity, amount
      FROM settle_snapshot WHERE imsi IS NOT NULL
      UNION ALL
      SELECT imsi, service, t, line, quantity, amount
      FROM settlement_detail_records WHERE period_id = %(pid)s) AS both_sides
GROUP BY imsi, service, t
HAVING NOT (count(*) = 2 AND count(theirs) = 1
            AND min(quantity) = max(quantity) AND min(amount) = max(amount))
"""
MATCH_LEFTOVERS: Final = (
    "ANALYZE m_keys",
    # our records behind every key left (a semi-join of the snapshot with the small key set)
    """
CREATE TEMP TABLE r_ours ON COMMIT DROP AS
SELECT r.ref, r.tenant, r.imsi, r.service, r.t, r.day, r.zone, r.quantity AS q, r.amount AS a
FROM settle_snapshot AS r
JOIN (SELECT imsi, service, t FROM m_keys WHERE on_ IS NOT NULL) k USING (imsi, service, t)
""",
    # a key with one record a side is a pair already (it differs: the agreeing ones are gone)
    """
INSERT INTO m_pairs
SELECT o.ref, k.id, false, o.tenant, o.q, o.a
FROM m_keys k JOIN r_ours o USING (imsi, service, t)
WHERE k.on_ = 1 AND k.tn = 1
""",
    """
DELETE FROM r_ours o USING m_keys k
WHERE o.imsi = k.imsi AND o.service = k.service AND o.t = k.t AND k.on_ = 1 AND k.tn = 1
""",
    """
CREATE TEMP TABLE r_theirs ON COMMIT DROP AS
SELECT d.line AS id, d.imsi, d.service, d.t, d.day, d.zone, d.quantity AS q, d.amount AS a,
       d.record_ref AS ref
FROM settlement_detail_records d
JOIN (SELECT imsi, service, t FROM m_keys
      WHERE tn IS NOT NULL AND NOT (tn = 1 AND on_ IS NOT DISTINCT FROM 1)) k
  USING (imsi, service, t)
WHERE d.period_id = %(pid)s
""",
    "CREATE INDEX ON r_ours (imsi, service, t)",
    # statistics: without them the joins below may plan as nested loops (quadratic)
    "ANALYZE r_ours",
    "ANALYZE r_theirs",
)
# Later rounds, on what is left: every pair that is each side's best in the one order
# (Δstart, Δquantity, their line, our record id): ties break the same way on every run.
MATCH_ROUND: Final = """
WITH c AS (
    SELECT o.ref AS our_ref, t.id AS their_id, abs(o.t - t.t) AS dt, abs(o.q - t.q) AS dq,
           o.q = t.q AND o.a = t.a AS same, o.tenant, o.q AS oq, o.a AS oa
    FROM r_theirs t
    JOIN r_ours o ON o.imsi = t.imsi AND o.service = t.service
                 AND o.t BETWEEN t.t - %(window)s AND t.t + %(window)s
), ranked AS (
    SELECT our_ref, their_id, same, tenant, oq, oa,
           row_number() OVER (PARTITION BY their_id ORDER BY dt, dq, our_ref) AS rt,
           row_number() OVER (PARTITION BY our_ref ORDER BY dt, dq, their_id) AS ro
    FROM c
), fresh AS (
    INSERT INTO m_pairs
    SELECT our_ref, their_id, same, tenant, oq, oa FROM ranked WHERE rt = 1 AND ro = 1
    RETURNING our_ref, their_id
), gone_ours AS (
    DELETE FROM r_ours WHERE ref IN (SELECT our_ref FROM fresh)
), gone_theirs AS (
    DELETE FROM r_theirs WHERE id IN (SELECT their_id FROM fresh)
)
SELECT count(*) FROM fresh
"""
# Classified pairs that differ at all (an exact pair is no discrepancy), then the unpaired.
MATCH_RESULTS: Final = (
    """
INSERT INTO settlement_discrepancies (period_id, level, kind, owner, day, service, zone,
    our_quantity, their_quantity, our_amount, their_amount, delta, disputable, evidence)
SELECT %(pid)s, 'record',
       CASE WHEN NOT w.q_ok THEN 'quantity_mismatch' WHEN NOT w.m_ok THEN 'price_mismatch'
            ELSE 'matched' END,
       p.tenant, t.day, t.service, t.zone, p.oq, t.q, p.oa, t.a, t.a - p.oa,
       NOT (w.q_ok AND w.m_ok), 'ours ' || p.our_ref || '; theirs line ' || t.id || ' ' || t.ref
FROM m_pairs p
JOIN (SELECT line AS id, service, day, zone, quantity AS q, amount AS a, record_ref AS ref
      FROM settlement_detail_records WHERE period_id = %(pid)s) t ON t.id = p.their_id
LEFT JOIN m_tol tol ON tol.service = t.service
CROSS JOIN LATERAL (SELECT
    settlement_within(p.oq, t.q, coalesce(tol.qa, 0), coalesce(tol.qp, 0)) AS q_ok,
    settlement_within(p.oa, t.a, coalesce(tol.ma, 0), coalesce(tol.mp, 0)) AS m_ok) w
WHERE NOT p.same
""",
    """
INSERT INTO settlement_discrepancies (period_id, level, kind, owner, day, service, zone,
    our_quantity, their_quantity, our_amount, their_amount, delta, disputable, evidence)
SELECT %(pid)s, 'record', 'missing_ours', coalesce(own.tenant, ''), t.day, t.service, t.zone,
       0, t.q, 0, t.a, t.a, true, 'theirs line ' || t.id || ' ' || t.ref
FROM r_theirs t
LEFT JOIN LATERAL (
    SELECT e.tenant
    FROM unnest(%(entry_imsis)s::text[], %(entry_tenants)s::text[]) AS e(imsi, tenant)
    WHERE e.imsi = t.imsi
    UNION ALL
    SELECT g.tenant
    FROM unnest(%(range_first)s::numeric[], %(range_last)s::numeric[], %(range_digits)s::int[],
                %(range_tenants)s::text[]) AS g(first, last, digits, tenant)
    WHERE length(t.imsi) = g.digits AND t.imsi::numeric BETWEEN g.first AND g.last
    LIMIT 1
) own ON true
""",
    """
INSERT INTO settlement_discrepancies (period_id, level, kind, owner, day, service, zone,
    our_quantity, their_quantity, our_amount, their_amount, delta, disputable, evidence)
SELECT %(pid)s, 'record', 'missing_theirs', o.tenant, o.day, o.service, o.zone,
       o.q, 0, o.a, 0, -o.a, true, 'ours ' || o.ref
FROM r_ours o
""",
)

INVOICE_TOTAL: Final = """
SELECT coalesce(sum(amount), 0)::bigint FROM settlement_invoice_lines WHERE period_id = %s
"""
ALLOCATED: Final = """
SELECT tenant, sum(wholesale)::bigint FROM settlement_allocations WHERE period_id = %s
GROUP BY tenant ORDER BY tenant
"""
DIFFERENCES: Final = """
SELECT owner, disputable, sum(delta)::bigint FROM settlement_discrepancies WHERE period_id = %s
GROUP BY owner, disputable
"""
SET_IDENTITY: Final = "UPDATE settlement_periods SET identity = %s WHERE id = %s"
# Approval re-reads the period's records: a record committed late with an earlier stored_at
# (an exporter transaction open across the cutoff) would change them.
RECHECK_ALLOCATION: Final = """
SELECT tenant, service, count(*), sum(quantity)::bigint, sum(amount)::bigint
FROM {records} AS r GROUP BY tenant, service ORDER BY 1, 2
"""
STORED_ALLOCATION: Final = """
SELECT tenant, service, records, quantity, wholesale FROM settlement_allocations
WHERE period_id = %s ORDER BY 1, 2
"""

EXCEPTIONS_SUMMARY: Final = """
SELECT owner, level, kind, disputable, count(*), sum(delta)::bigint
FROM settlement_discrepancies WHERE period_id = %s
GROUP BY owner, level, kind, disputable ORDER BY owner = '', owner, level, kind, disputable
"""
EXCEPTIONS_LIST: Final = """
SELECT id, level, kind, owner, day::text, service, zone, our_quantity, their_quantity,
       our_amount, their_amount, delta, disputable, evidence, dispute_id
FROM settlement_discrepancies
WHERE period_id = %(pid)s AND (%(owner)s::text IS NULL OR owner = %(owner)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s) AND (disputable OR %(all)s)
ORDER BY abs(delta) DESC, id
LIMIT %(limit)s
"""

# -- disputes ----------------------------------------------------------------------------------

DISPUTABLE_GROUPS: Final = """
SELECT owner, kind, count(*), sum(delta)::bigint FROM settlement_discrepancies
WHERE period_id = %s AND disputable AND dispute_id IS NULL
GROUP BY owner, kind
"""
INSERT_DISPUTE: Final = """
INSERT INTO settlement_disputes (period_id, owner, kind, records, claimed, created_at)
VALUES (%(pid)s, %(owner)s, %(kind)s, %(records)s, %(claimed)s, %(at)s)
ON CONFLICT (period_id, owner, kind) DO NOTHING
RETURNING id
"""
LINK_DISPUTE: Final = """
UPDATE settlement_discrepancies SET dispute_id = %(id)s
WHERE period_id = %(pid)s AND owner = %(owner)s AND kind = %(kind)s AND disputable
"""
DISPUTE: Final = """
SELECT d.id, d.period_id, d.owner, d.kind, d.records, d.claimed, d.accepted, d.state,
       p.host_mno, p.month
FROM settlement_disputes d JOIN settlement_periods p ON p.id = d.period_id
WHERE d.id = %s FOR UPDATE OF d
"""
SET_DISPUTE: Final = "UPDATE settlement_disputes SET state = %s, accepted = %s WHERE id = %s"
ADD_DISPUTE_EVENT: Final = """
INSERT INTO settlement_dispute_events (dispute_id, seq, from_state, to_state, actor, at, note)
SELECT %(id)s, coalesce(max(seq), 0) + 1, %(from)s, %(to)s, %(actor)s, %(at)s, %(note)s
FROM settlement_dispute_events WHERE dispute_id = %(id)s
"""
DISPUTES_OF_PERIOD: Final = """
SELECT id, owner, kind, records, claimed, accepted, state FROM settlement_disputes
WHERE period_id = %s ORDER BY id
"""
# The evidence of a dispute: its discrepancies with the invoice line(s) and record ids.
DISPUTE_EVIDENCE: Final = """
SELECT id, level, kind, owner, day::text, service, zone, our_quantity, their_quantity,
       our_amount, their_amount, delta, evidence
FROM settlement_discrepancies WHERE dispute_id = %s ORDER BY id
"""

# -- statements and summary --------------------------------------------------------------------

# As the tenant's role: its own records of each period of the month (row-level security).
TENANT_PERIODS: Final = """
SELECT id, host_mno, state, timezone, month_start, month_end, cutoff, prev_cutoff, home_zone,
       default_zone, zone_plmns, zone_plmn_names, zone_mccs, zone_mcc_names
FROM settlement_period_states
WHERE month = %s AND state IN ('reconciled', 'disputed', 'approved', 'closed')
ORDER BY host_mno
"""
TENANT_USAGE: Final = """
SELECT service, max(unit), count(*), sum(quantity)::bigint, sum(amount)::bigint
FROM {records} AS r GROUP BY service ORDER BY service
"""
# {records} here is the UNION ALL of the month's periods (a subscriber counts once).
TENANT_ACTIVE: Final = """
SELECT count(DISTINCT subscriber) FROM ({records}) AS r WHERE subscriber <> ''
"""
TENANT_DISPUTES: Final = """
SELECT d.id, s.host_mno, d.kind, d.records, d.claimed, d.state, d.accepted
FROM settlement_disputes d JOIN settlement_period_states s ON s.id = d.period_id
WHERE s.month = %s ORDER BY d.id
"""
UPSERT_STATEMENT: Final = """
INSERT INTO settlement_statements (tenant, month, issued_at, amount_due, currency, figures)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant, month) DO UPDATE SET issued_at = EXCLUDED.issued_at,
    amount_due = EXCLUDED.amount_due, currency = EXCLUDED.currency, figures = EXCLUDED.figures
"""

PORTFOLIO_PERIODS: Final = """
SELECT id, host_mno, state, currency, identity FROM settlement_periods WHERE month = %s
ORDER BY host_mno
"""
PORTFOLIO_ALLOCATIONS: Final = """
SELECT a.tenant, p.host_mno, p.state, a.service, a.records, a.quantity, a.wholesale
FROM settlement_allocations a JOIN settlement_periods p ON p.id = a.period_id
WHERE p.month = %s ORDER BY 1, 2, 4
"""
PORTFOLIO_ACTIVE: Final = """
SELECT tenant, count(DISTINCT subscriber) FROM ({records}) AS r
WHERE subscriber <> '' GROUP BY tenant
"""
PORTFOLIO_PERIOD_FACTS: Final = """
SELECT id, host_mno, state, timezone, month_start, month_end, cutoff, prev_cutoff, home_zone,
       default_zone, zone_plmns, zone_plmn_names, zone_mccs, zone_mcc_names
FROM settlement_period_states
WHERE month = %s AND state IN ('reconciled', 'disputed', 'approved', 'closed')
"""
PORTFOLIO_REJECTED: Final = """
SELECT d.owner, coalesce(sum(CASE WHEN d.state = 'rejected' THEN d.claimed
                                  WHEN d.state IN ('accepted', 'credited')
                                  THEN d.claimed - coalesce(d.accepted, d.claimed)
                                  ELSE 0 END), 0)::bigint
FROM settlement_disputes d JOIN settlement_periods p ON p.id = d.period_id
WHERE p.month = %s AND d.owner <> '' GROUP BY d.owner
"""
PORTFOLIO_CREDITS: Final = """
SELECT p.host_mno, coalesce(sum(coalesce(d.accepted, d.claimed)) FILTER (
           WHERE d.state IN ('accepted', 'credited')), 0)::bigint,
       coalesce(sum(d.claimed) FILTER (WHERE d.state IN ('open', 'sent')), 0)::bigint
FROM settlement_periods p LEFT JOIN settlement_disputes d ON d.period_id = p.id
WHERE p.month = %s GROUP BY p.host_mno
"""
PORTFOLIO_STATEMENTS: Final = """
SELECT tenant, amount_due, figures FROM settlement_statements WHERE month = %s ORDER BY tenant
"""
