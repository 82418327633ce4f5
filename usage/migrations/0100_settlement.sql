-- depends: 0004_writer_partitions
-- Wholesale settlement (settlement/ holds the arithmetic; this is where its figures live).
--
-- ocs_settlement: the role `ocs settle` works as. It reads every tenant's usage (a policy of its
-- own on usage_records) and owns the settlement tables' rows. Tenants see only their own rows
-- of the tables that name a tenant (allocations, discrepancies, disputes, statements) and the
-- state of the periods, never a period's totals (those would show a sibling's volume).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ocs_settlement') THEN
        CREATE ROLE ocs_settlement NOLOGIN;
    END IF;
END
$$;
GRANT ocs_settlement TO CURRENT_USER;
CREATE POLICY usage_settlement_read ON usage_records FOR SELECT TO ocs_settlement USING (true);
GRANT SELECT ON usage_records TO ocs_settlement;
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO ocs_settlement', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ocs_settlement', current_schema());
END
$$;

-- One period per host MNO and month. `cutoff` is when the last reconciliation read the usage:
-- records stored after it belong to the next period of the same MNO (settlement/periods.py).
CREATE TABLE settlement_periods (
    id               bigserial   PRIMARY KEY,
    host_mno         text        NOT NULL,
    month            text        NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    timezone         text        NOT NULL,
    month_start      timestamptz NOT NULL,
    month_end        timestamptz NOT NULL,
    currency         text        NOT NULL,
    state            text        NOT NULL DEFAULT 'open',
    invoice_file     text        NOT NULL DEFAULT '',
    detail_services  text[]      NOT NULL DEFAULT '{}',
    -- the MNO's invoice zones at opening (wholesale/<mno>.yaml), so the period's records can be
    -- zoned by SQL alone: visited PLMN, else its MCC, else the default zone; home when none.
    home_zone        text        NOT NULL,
    default_zone     text        NOT NULL,
    zone_plmns       text[]      NOT NULL DEFAULT '{}',
    zone_plmn_names  text[]      NOT NULL DEFAULT '{}',
    zone_mccs        text[]      NOT NULL DEFAULT '{}',
    zone_mcc_names   text[]      NOT NULL DEFAULT '{}',
    cutoff           timestamptz,
    identity         jsonb,
    UNIQUE (host_mno, month)
);

CREATE TABLE settlement_transitions (
    period_id   bigint      NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    seq         integer     NOT NULL,
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    event       text        NOT NULL,
    actor       text        NOT NULL,
    at          timestamptz NOT NULL,
    note        text        NOT NULL DEFAULT '',
    PRIMARY KEY (period_id, seq)
);

CREATE TABLE settlement_invoice_lines (
    period_id  bigint NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    line       integer NOT NULL,
    day        date    NOT NULL,
    service    text    NOT NULL,
    zone       text    NOT NULL,
    quantity   bigint  NOT NULL,
    amount     bigint  NOT NULL,
    PRIMARY KEY (period_id, line),
    UNIQUE (period_id, day, service, zone)
);

-- The MNO's record-level detail, loaded by COPY (line: its line in the file, for evidence).
CREATE TABLE settlement_detail_records (
    period_id   bigint      NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    line        bigint      NOT NULL,
    record_ref  text        NOT NULL,
    imsi        text        NOT NULL,
    service     text        NOT NULL,
    zone        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    t           bigint      NOT NULL,  -- started_at in epoch seconds (matching)
    day         date        NOT NULL,  -- started_at's day in the MNO's time zone
    quantity    bigint      NOT NULL,
    amount      bigint      NOT NULL,
    PRIMARY KEY (period_id, line)
);

-- Per tenant and service: what its records in the period add up to (snapshot of reconcile).
CREATE TABLE settlement_allocations (
    period_id  bigint NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    tenant     text   NOT NULL,
    service    text   NOT NULL,
    unit       text   NOT NULL,
    records    bigint NOT NULL,
    quantity   bigint NOT NULL,
    wholesale  bigint NOT NULL,
    PRIMARY KEY (period_id, tenant, service)
);

CREATE TABLE settlement_disputes (
    id          bigserial   PRIMARY KEY,
    period_id   bigint      NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    owner       text        NOT NULL,  -- tenant, '' = unallocated
    kind        text        NOT NULL,
    records     bigint      NOT NULL,
    claimed     bigint      NOT NULL CHECK (claimed > 0),
    accepted    bigint      CHECK (accepted IS NULL OR (accepted >= 0 AND accepted <= claimed)),
    state       text        NOT NULL DEFAULT 'open',
    created_at  timestamptz NOT NULL,
    UNIQUE (period_id, owner, kind)
);

CREATE TABLE settlement_dispute_events (
    dispute_id  bigint      NOT NULL REFERENCES settlement_disputes ON DELETE CASCADE,
    seq         integer     NOT NULL,
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    actor       text        NOT NULL,
    at          timestamptz NOT NULL,
    note        text        NOT NULL DEFAULT '',
    PRIMARY KEY (dispute_id, seq)
);

CREATE TABLE settlement_discrepancies (
    id            bigserial PRIMARY KEY,
    period_id     bigint  NOT NULL REFERENCES settlement_periods ON DELETE CASCADE,
    level         text    NOT NULL,  -- cell | record
    kind          text    NOT NULL,
    owner         text    NOT NULL,  -- tenant, '' = unallocated
    day           date    NOT NULL,
    service       text    NOT NULL,
    zone          text    NOT NULL,
    our_quantity  bigint  NOT NULL,
    their_quantity bigint NOT NULL,
    our_amount    bigint  NOT NULL,
    their_amount  bigint  NOT NULL,
    delta         bigint  NOT NULL,
    disputable    boolean NOT NULL,
    evidence      text    NOT NULL DEFAULT '',
    dispute_id    bigint  REFERENCES settlement_disputes ON DELETE SET NULL
);
CREATE INDEX settlement_discrepancies_period ON settlement_discrepancies (period_id, owner, kind);

CREATE TABLE settlement_statements (
    tenant      text        NOT NULL,
    month       text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    amount_due  bigint      NOT NULL,
    currency    text        NOT NULL,
    figures     jsonb       NOT NULL,
    PRIMARY KEY (tenant, month)
);

-- Rights: the settlement role does everything here; the portfolio reads everything.
GRANT SELECT, INSERT, UPDATE, DELETE ON settlement_periods, settlement_transitions,
    settlement_invoice_lines, settlement_detail_records, settlement_allocations,
    settlement_disputes, settlement_dispute_events, settlement_discrepancies,
    settlement_statements TO ocs_settlement;
GRANT USAGE ON SEQUENCE settlement_periods_id_seq, settlement_disputes_id_seq,
    settlement_discrepancies_id_seq TO ocs_settlement;
GRANT SELECT ON settlement_periods, settlement_transitions, settlement_invoice_lines,
    settlement_allocations, settlement_disputes, settlement_dispute_events,
    settlement_discrepancies, settlement_statements TO ocs_portfolio;

-- A tenant's own rows only, enforced by the database (as usage_records is).
ALTER TABLE settlement_allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE settlement_disputes ENABLE ROW LEVEL SECURITY;
ALTER TABLE settlement_discrepancies ENABLE ROW LEVEL SECURITY;
ALTER TABLE settlement_statements ENABLE ROW LEVEL SECURITY;
ALTER TABLE settlement_allocations FORCE ROW LEVEL SECURITY;
ALTER TABLE settlement_disputes FORCE ROW LEVEL SECURITY;
ALTER TABLE settlement_discrepancies FORCE ROW LEVEL SECURITY;
ALTER TABLE settlement_statements FORCE ROW LEVEL SECURITY;
CREATE POLICY settlement_allocations_all ON settlement_allocations TO ocs_settlement, ocs_portfolio
    USING (true) WITH CHECK (true);
CREATE POLICY settlement_disputes_all ON settlement_disputes TO ocs_settlement, ocs_portfolio
    USING (true) WITH CHECK (true);
CREATE POLICY settlement_discrepancies_all ON settlement_discrepancies
    TO ocs_settlement, ocs_portfolio USING (true) WITH CHECK (true);
CREATE POLICY settlement_statements_all ON settlement_statements TO ocs_settlement, ocs_portfolio
    USING (true) WITH CHECK (true);
CREATE POLICY settlement_allocations_tenant ON settlement_allocations FOR SELECT TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)));
CREATE POLICY settlement_disputes_tenant ON settlement_disputes FOR SELECT TO ocs_tenant
    USING (owner = (SELECT usage_role_tenant(current_user)));
CREATE POLICY settlement_discrepancies_tenant ON settlement_discrepancies FOR SELECT TO ocs_tenant
    USING (owner = (SELECT usage_role_tenant(current_user)));
CREATE POLICY settlement_statements_tenant ON settlement_statements FOR SELECT TO ocs_tenant
    USING (tenant = (SELECT usage_role_tenant(current_user)));
GRANT SELECT ON settlement_allocations, settlement_disputes, settlement_discrepancies,
    settlement_statements TO ocs_tenant;

-- What a tenant may know of a period: network, month, state, bounds and zones. No totals.
CREATE VIEW settlement_period_states AS
    SELECT p.id, p.host_mno, p.month, p.state, p.timezone, p.month_start, p.month_end,
           p.cutoff, prev.cutoff AS prev_cutoff, p.home_zone, p.default_zone,
           p.zone_plmns, p.zone_plmn_names, p.zone_mccs, p.zone_mcc_names
    FROM settlement_periods p
    LEFT JOIN settlement_periods prev
           ON prev.host_mno = p.host_mno AND prev.month_end = p.month_start;
GRANT SELECT ON settlement_period_states TO ocs_tenant, ocs_settlement, ocs_portfolio;

-- The usage records a period settles, zoned and dated in the MNO's time zone. SECURITY INVOKER
-- (the default): usage_records' row-level security applies to the caller, so a tenant role
-- calling it gets its own records only. Membership, stated once here:
--   host_mno is the period's, kind usage or debit (refunds carry no wholesale), stored at or
--   before the period's cutoff (its last reconciliation), started before the month's end, and
--   either started in the month or stored after the previous period's cutoff (a late record).
-- Records ending more than 92 days before the month are not scanned (partition pruning).
--
-- The period's facts are arguments, not a join: the planner inlines this SQL function, so the
-- caller's constants reach the scan (partition pruning, row estimates, parallel workers); a
-- join to settlement_periods here made the month's aggregate four times slower.
CREATE FUNCTION settlement_records(
    mno text, tz text, month_start timestamptz, month_end timestamptz, cutoff timestamptz,
    prev_cutoff timestamptz, home_zone text, default_zone text, plmns text[], plmn_zones text[],
    mccs text[], mcc_zones text[])
RETURNS TABLE (tenant text, subscriber text, imsi text, service text, unit text, t bigint,
               day date, zone text, quantity bigint, amount bigint, ref text)
LANGUAGE sql STABLE
AS $$
    -- Zones by array lookups in one expression (a join per record costs several times more);
    -- most records are at home (no visited network) and skip them.
    SELECT r.tenant, r.subscriber, r.imsi, r.service, r.unit,
           floor(extract(epoch FROM coalesce(r.started_at, r.ended_at)))::bigint,
           (coalesce(r.started_at, r.ended_at) AT TIME ZONE tz)::date,
           CASE WHEN r.visited_plmn = '' THEN home_zone
                ELSE coalesce(plmn_zones[array_position(plmns, r.visited_plmn)],
                              mcc_zones[array_position(mccs, left(r.visited_plmn, 3))],
                              default_zone) END,
           r.units, r.wholesale,
           r.tenant || ':' || r.vshard || ':' || r.entry_id
    FROM usage_records r
    WHERE r.host_mno = mno
      AND r.kind IN ('usage', 'debit')
      AND r.stored_at <= cutoff
      AND r.ended_at <= cutoff
      AND r.ended_at >= month_start - interval '92 days'
      AND coalesce(r.started_at, r.ended_at) < month_end
      AND (coalesce(r.started_at, r.ended_at) >= month_start
           OR (prev_cutoff IS NOT NULL AND r.stored_at > prev_cutoff))
$$;
GRANT EXECUTE ON FUNCTION settlement_records(text, text, timestamptz, timestamptz, timestamptz,
    timestamptz, text, text, text[], text[], text[], text[])
    TO ocs_tenant, ocs_settlement, ocs_portfolio;

-- The same by period id, for ad-hoc queries (slower: the facts come from a join).
CREATE FUNCTION settlement_period_records(pid bigint)
RETURNS TABLE (tenant text, subscriber text, imsi text, service text, unit text, t bigint,
               day date, zone text, quantity bigint, amount bigint, ref text)
LANGUAGE sql STABLE
AS $$
    SELECT r.* FROM settlement_period_states p,
    LATERAL settlement_records(p.host_mno, p.timezone, p.month_start, p.month_end, p.cutoff,
        p.prev_cutoff, p.home_zone, p.default_zone, p.zone_plmns, p.zone_plmn_names,
        p.zone_mccs, p.zone_mcc_names) AS r
    WHERE p.id = pid
$$;
GRANT EXECUTE ON FUNCTION settlement_period_records(bigint)
    TO ocs_tenant, ocs_settlement, ocs_portfolio;

-- settlement.model.Tolerance in SQL: within `absolute` OR within `ppm` of the larger figure.
CREATE FUNCTION settlement_within(ours bigint, theirs bigint, absolute bigint, ppm bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT abs(ours::numeric - theirs) <= absolute
        OR abs(ours::numeric - theirs) * 1000000 <= ppm * greatest(abs(ours::numeric), abs(theirs))
$$;
GRANT EXECUTE ON FUNCTION settlement_within(bigint, bigint, bigint, bigint)
    TO ocs_settlement, ocs_portfolio;
