"""A generated month of usage for settlement: our records (a COPY file for usage_records), the
host MNOs' invoices and record-level detail files, with discrepancies of every class injected
and remembered (the ground truth the benchmark scores reconciliation against).

Used by ``benchmarks.bench_settle`` (millions of records) and ``benchmarks.settle_demo`` (the
demo tenants' month the operator guide walks through).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from settlement.invoice import InvoiceLine, render_invoice
from settlement.model import HostMno
from settlement.reconcile import list_price
from tariffs.numbers import MICRO_PER_UNIT

# usage_records columns the COPY file fills (the rest take their defaults)
USAGE_COLUMNS = (
    "tenant", "vshard", "entry_id", "kind", "source", "host_mno", "subscriber", "msisdn", "imsi",
    "service", "started_at", "ended_at", "units", "unit", "retail", "wholesale", "currency",
    "visited_plmn",
)  # fmt: skip
DETAIL_HEADER = "record_id,imsi,service,zone,started_at,quantity,unit,amount,currency\n"
UNITS = {"data": ("byte", "bytes"), "voice": ("second", "seconds"), "sms": ("event", "events")}
DETAIL_SERVICES = ("voice", "sms")  # record-level detail; data is reconciled cell by cell
UNALLOCATED_IMSI_FIRST = 999_990_000_000_000  # a range no tenant holds


@dataclass(frozen=True)
class TenantSpec:
    id: str
    imsi_first: int
    msisdn_first: int
    subscribers: int
    mnos: tuple[str, ...]  # subscriber n rides on mnos[n % len(mnos)]


@dataclass
class Truth:
    """What was injected: keys the reconciliation must find (and nothing else)."""

    missing_theirs: set[str] = field(default_factory=set)  # our record refs
    missing_ours: set[str] = field(default_factory=set)  # detail record ids (IMSI of a tenant)
    unallocated: set[str] = field(default_factory=set)  # detail record ids (nobody's IMSI)
    quantity_mismatch: set[str] = field(default_factory=set)  # detail record ids
    price_mismatch: set[str] = field(default_factory=set)  # detail record ids
    jittered: set[str] = field(default_factory=set)  # moved within the window: must match
    cells: dict[str, set[tuple[str, str, str, str]]] = field(
        default_factory=lambda: defaultdict(set)
    )  # kind → (mno, day, service, zone)


@dataclass
class Month:
    month: str
    usage_file: Path
    records: int
    detail_files: dict[str, Path]
    invoice_files: dict[str, Path]
    truth: Truth


def _money(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_UNIT)
    return f"{sign}{whole}.{frac:06d}"


def generate(
    out: Path,
    month: str,
    tenants: list[TenantSpec],
    mnos: dict[str, HostMno],
    records: int,
    *,
    rate: float = 0.001,
    cells_each: int = 3,
    seed: int = 7,
) -> Month:
    """Write the month's files under ``out``; ``rate`` is the share of detail records given
    each record-level discrepancy class, ``cells_each`` the data cells given each cell class."""
    rnd = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    year, mon = int(month[:4]), int(month[5:7])
    days = (datetime(year + mon // 12, mon % 12 + 1, 1) - datetime(year, mon, 1)).days
    # per MNO: the local midnight of each day (epoch) and the text form of its date and offset
    starts: dict[str, list[tuple[int, str, str]]] = {}
    for mno in mnos.values():
        zone = ZoneInfo(mno.timezone)
        rows = []
        for d in range(days):
            local = datetime(year, mon, 1, tzinfo=zone) + timedelta(days=d)
            offset = local.utcoffset() or timedelta(0)
            sign = "+" if offset >= timedelta(0) else "-"
            hours, rest = divmod(abs(int(offset.total_seconds())), 3600)
            rows.append(
                (
                    int(local.timestamp()),
                    local.date().isoformat(),
                    f"{sign}{hours:02d}:{rest // 60:02d}",
                )
            )
        starts[mno.id] = rows
    subscribers = [(t, n) for t in tenants for n in range(t.subscribers)]
    truth = Truth()
    ours_cells: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    detail_cells: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    detail_handles = {m: (out / f"detail-{m}.csv").open("w") for m in mnos}
    for handle in detail_handles.values():
        handle.write(DETAIL_HEADER)
    usage_path = out / "usage.tsv"
    written = 0
    window = {m.id: m.matching.start_s for m in mnos.values()}
    with usage_path.open("w") as usage:
        buffer: list[str] = []
        for i in range(records):
            tenant, n = subscribers[rnd.randrange(len(subscribers))]
            mno = mnos[tenant.mnos[n % len(tenant.mnos)]]
            imsi = str(tenant.imsi_first + n)
            msisdn = str(tenant.msisdn_first + n)
            pick = rnd.random()
            service = "data" if pick < 0.5 else "voice" if pick < 0.85 else "sms"
            day = rnd.randrange(days)
            second = rnd.randrange(86_400)
            midnight, date_text, offset = starts[mno.id][day]
            t = midnight + second
            roaming = rnd.random() < 0.1
            zone = "eu" if roaming else mno.home_zone
            if service == "data":
                quantity = rnd.randrange(10_000, 50_000_000)
            elif service == "voice":
                quantity = rnd.randrange(1, 1800)
            else:
                quantity = 1
            price = mno.price(service, zone)
            assert price is not None, (service, zone)
            amount = list_price(quantity, price.amount, price.per)
            ref_vshard = i % 1024
            entry = f"{1_700_000_000_000 + i}-0"
            ref = f"{tenant.id}:{ref_vshard}:{entry}"
            clock = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            stamp = f"{date_text} {clock}{offset}"
            ours = True
            if service in DETAIL_SERVICES:
                record_id = f"D{i}"
                fate = rnd.random()
                dq, da, dt = quantity, amount, t
                write_detail = True
                if fate < rate:
                    write_detail = False
                    truth.missing_theirs.add(ref)
                elif fate < 2 * rate:
                    ours = False
                    truth.missing_ours.add(record_id)
                elif fate < 3 * rate:
                    dq = quantity * 2 + 100
                    da = list_price(dq, price.amount, price.per)
                    truth.quantity_mismatch.add(record_id)
                elif fate < 4 * rate:
                    da = amount + amount // 2 + 20_000
                    truth.price_mismatch.add(record_id)
                elif fate < 5 * rate:
                    dt = t + rnd.choice((-1, 1)) * rnd.randint(1, window[mno.id])
                    truth.jittered.add(record_id)
                if write_detail:
                    detail_handles[mno.id].write(
                        f"{record_id},{imsi},{service},{zone},{_iso(dt, starts[mno.id], offset)},"
                        f"{dq},{UNITS[service][0]},{_money(da)},{mno.currency}\n"
                    )
                    cell = detail_cells[(mno.id, _day_of(dt, starts[mno.id]), service, zone)]
                    cell[0] += dq
                    cell[1] += da
            else:
                cell = ours_cells[(mno.id, date_text, service, zone)]
                cell[0] += quantity
                cell[1] += amount
            if ours:
                buffer.append(
                    f"{tenant.id}\t{ref_vshard}\t{entry}\tusage\tgy\t{mno.id}\t{msisdn}\t{msisdn}\t"
                    f"{imsi}\t{service}\t{stamp}\t{stamp}\t{quantity}\t{UNITS[service][1]}\t"
                    f"{amount * 4}\t{amount}\t{mno.currency}\t{'20801' if roaming else ''}\n"
                )
                written += 1
                if len(buffer) >= 10_000:
                    usage.writelines(buffer)
                    buffer.clear()
        usage.writelines(buffer)
    # an IMSI range no tenant holds, on each MNO's detail (and so on its invoice)
    extra = max(1, int(records * rate / 4))
    for k in range(extra):
        mno = list(mnos.values())[k % len(mnos)]
        day = rnd.randrange(days)
        midnight, date_text, offset = starts[mno.id][day]
        t = midnight + rnd.randrange(86_400)
        price = mno.price("sms", mno.home_zone)
        assert price is not None
        record_id = f"U{k}"
        truth.unallocated.add(record_id)
        detail_handles[mno.id].write(
            f"{record_id},{UNALLOCATED_IMSI_FIRST + k},sms,{mno.home_zone},"
            f"{_iso(t, starts[mno.id], offset)},1,event,{_money(price.amount)},{mno.currency}\n"
        )
        cell = detail_cells[(mno.id, date_text, "sms", mno.home_zone)]
        cell[0] += 1
        cell[1] += price.amount
    for handle in detail_handles.values():
        handle.close()
    invoices = _invoices(rnd, out, mnos, ours_cells, detail_cells, truth, cells_each, days, starts)
    return Month(
        month,
        usage_path,
        written,
        {m: out / f"detail-{m}.csv" for m in mnos},
        invoices,
        truth,
    )


def _day_of(t: int, days: list[tuple[int, str, str]]) -> str:
    for midnight, text, _offset in reversed(days):
        if t >= midnight:
            return text
    return days[0][1]  # jitter before the first midnight: counted on day one (rare)


def _iso(t: int, days: list[tuple[int, str, str]], offset: str) -> str:
    for midnight, text, _off in reversed(days):
        if t >= midnight:
            s = t - midnight
            return f"{text}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{offset}"
    return datetime.fromtimestamp(t, ZoneInfo("UTC")).isoformat()


def _invoices(
    rnd: random.Random,
    out: Path,
    mnos: dict[str, HostMno],
    ours_cells: dict[tuple[str, str, str, str], list[int]],
    detail_cells: dict[tuple[str, str, str, str], list[int]],
    truth: Truth,
    cells_each: int,
    days: int,
    starts: dict[str, list[tuple[int, str, str]]],
) -> dict[str, Path]:
    lines: dict[str, dict[tuple[str, str, str], list[int]]] = {m: {} for m in mnos}
    for (mno, day, service, zone), (q, a) in detail_cells.items():
        lines[mno][(day, service, zone)] = [q, a]
    data_cells = sorted(ours_cells)
    rnd.shuffle(data_cells)
    for index, key in enumerate(data_cells):
        mno, day, service, zone = key
        q, a = ours_cells[key]
        kind = index // cells_each
        if kind == 0:  # the MNO counted 10 % more
            q, a = q + q // 10, a + a // 10
            truth.cells["quantity_mismatch"].add(key)
        elif kind == 1:  # same volume, 5 % dearer
            a = a + a // 20
            truth.cells["price_mismatch"].add(key)
        elif kind == 2:  # not invoiced
            truth.cells["missing_theirs"].add(key)
            continue
        lines[mno][(day, service, zone)] = [q, a]
    # invoiced cells we have no usage in: data in the default zone ("world") on some days
    for k in range(cells_each * len(mnos)):
        mno = list(mnos)[k % len(mnos)]
        zone = next(z.name for z in mnos[mno].zones if z.default)
        day = starts[mno][(k * 7) % days][1]
        price = mnos[mno].price("data", zone)
        assert price is not None
        q = 1_048_576 * (k + 1)
        lines[mno][(day, "data", zone)] = [q, list_price(q, price.amount, price.per)]
        truth.cells["missing_ours"].add((mno, day, "data", zone))
    paths: dict[str, Path] = {}
    for mno, cells in lines.items():
        ordered = [
            InvoiceLine(i + 2, d, s, z, q, a)
            for i, ((d, s, z), (q, a)) in enumerate(sorted(cells.items()))
        ]
        path = out / f"invoice-{mno}.csv"
        units = {s: u for s, u in mnos[mno].services.items()}
        path.write_text(render_invoice(ordered, mnos[mno].currency, units))
        paths[mno] = path
    return paths


def months_around(month: str) -> list[str]:
    """The first days of the month before, the month and the month after (the partitions a
    month's records can land in: ``ended_at`` is UTC, days are the MNO's)."""
    year, mon = int(month[:4]), int(month[5:7])
    out = []
    for delta in (-1, 0, 1):
        index = year * 12 + mon - 1 + delta
        out.append(f"{index // 12:04d}-{index % 12 + 1:02d}-01")
    return out


def load_usage(url: str, month: Month) -> float:
    """COPY the month's usage into usage_records as the writer role, then VACUUM (ANALYZE) it;
    returns seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL ROLE ocs_writer")
            for first in months_around(month.month):
                conn.execute("SELECT usage_ensure_month(%s::date)", (first,))
        # COPY cannot write through row-level security: stage, then one INSERT (as the
        # exporter does, batch by batch)
        columns = ", ".join(USAGE_COLUMNS)
        with conn.transaction():
            conn.execute("SET LOCAL ROLE ocs_writer")
            conn.execute(
                "CREATE TEMP TABLE bench_stage ON COMMIT DROP AS "
                f"SELECT {columns} FROM usage_records WITH NO DATA"
            )
            with conn.cursor() as cur:
                with (
                    cur.copy(f"COPY bench_stage ({columns}) FROM STDIN") as copy,
                    month.usage_file.open("rb") as handle,
                ):
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                cur.execute(f"INSERT INTO usage_records ({columns}) SELECT * FROM bench_stage")
        # A month's records reach settlement long after autovacuum has been over them (hint
        # bits set, pages all-visible); a bulk load that nothing has read yet would make the
        # first reconciliation pay for that instead.
        conn.execute("VACUUM (ANALYZE) usage_records")
    return time.perf_counter() - started
