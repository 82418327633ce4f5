"""``ocs xdr``: exit codes, summary, rejects file, JSON, the watched drop directory."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from ocs.cli import main
from tests.support.charging import DEMO_CATALOG
from tests.xdr.conftest import ACME_1, HEADER, OPENING, Xdr, line
from usage.xdr.importer import ImportResult
from usage.xdr.watch import DropWatcher

GOLDEN = Path(__file__).parent / "golden"


def argv(xdr: Xdr, redis_url: str, *extra: str) -> list[str]:
    return [
        "xdr", "import", "--mno", "telco_de", "--catalog", str(DEMO_CATALOG),
        "--redis-url", redis_url, "--state-dir", str(xdr.tmp / "state"), "--no-store", *extra,
    ]  # fmt: skip


async def ocs(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_import_prints_a_summary_per_tenant(
    xdr: Xdr, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [shutil.copy(GOLDEN / f"{s}.csv", xdr.tmp / f"{s}.csv") for s in ("voice", "sms")]
    assert await ocs(*argv(xdr, redis_url, *map(str, files))) == 0
    out = capsys.readouterr()
    assert "voice.csv: done" in out.err and "sms.csv: done" in out.err
    table = out.out
    assert "acme" in table and "globex" in table and "EUR" in table
    # acme: 7 voice + 2 SMS records; retail 5.001334 + 0.96 EUR (golden voice + sms)
    acme_row = next(row for row in table.splitlines() if "acme" in row)
    assert acme_row.split()[:4] == ["acme", "9", "9", "9"] and "5.961334 EUR" in acme_row
    assert await ocs(*argv(xdr, redis_url, str(files[0]))) == 0  # again: manifest, nothing done
    assert "already imported" in capsys.readouterr().err


async def test_rejects_make_the_exit_status_non_zero(
    xdr: Xdr, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = xdr.write("r.csv", line("a", "SMS-MO", "2026-11-17 10:00:00", "1"), "garbage")
    assert await ocs(*argv(xdr, redis_url, "--json", str(path))) == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert result["tenants"]["acme"]["charged"] == 1 and result["tenants"]["-"]["rejected"] == 1
    assert Path(f"{path}.rejects.csv").read_text().splitlines()[1].startswith("3,unparseable,")
    assert (await xdr.account("acme", ACME_1)).balance == OPENING - 90_000


async def test_rate_only_needs_no_redis(xdr: Xdr, capsys: pytest.CaptureFixture[str]) -> None:
    path = xdr.write("q.csv", line("a", "SMS-MO", "2026-11-17 10:00:00", "1"))
    code = await ocs("xdr", "import", "--mno", "telco_de", "--catalog", str(DEMO_CATALOG),
                     "--rate-only", "--redis-url", "redis://127.0.0.1:1", str(path))  # fmt: skip
    assert code == 0 and "0.09 EUR" in capsys.readouterr().out


async def test_bad_input_exits_2_with_file_and_line(
    xdr: Xdr, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = xdr.tmp / "m.yaml"
    mapping.write_text("mno: telco_de\nformat: tsv\n", encoding="utf-8")
    path = xdr.write("x.csv")
    assert await ocs(*argv(xdr, redis_url, "--mapping", str(mapping), str(path))) == 2
    assert f"{mapping}:2: format: 'tsv' is not csv or fixed" in capsys.readouterr().err
    assert await ocs(*argv(xdr, redis_url, str(xdr.tmp / "missing.csv"))) == 2
    assert await ocs(*argv(xdr, redis_url, "--tenant", "nobody", str(path))) == 2
    assert await ocs("xdr", "check", "--mno", "telco_de", "--catalog", str(DEMO_CATALOG)) == 0


async def test_watch_moves_files_to_processed_or_rejected(xdr: Xdr, redis_url: str) -> None:
    drop = xdr.tmp / "drop"
    drop.mkdir()
    (drop / "good.csv").write_text(HEADER + line("w1", "SMS-MO", "2026-11-17 10:00:00", "1") + "\n")
    (drop / "bad-header.csv").write_text("id;x\n1;2\n")
    (drop / ".incoming.csv").write_text("still uploading")
    code = await ocs(*argv(xdr, redis_url, "--watch", str(drop), "--rounds", "2",
                           "--interval-s", "0.1"))  # fmt: skip
    assert code == 1  # the bad file was rejected
    assert (drop / "processed" / "good.csv").exists()
    assert (drop / "rejected" / "bad-header.csv").exists()
    assert (drop / ".incoming.csv").exists()
    assert (await xdr.account("acme", ACME_1)).balance == OPENING - 90_000


async def test_watcher_waits_until_a_file_stops_growing(tmp_path: Path) -> None:
    imported: list[str] = []
    sleeps: list[float] = []

    async def import_file(path: Path) -> ImportResult:
        imported.append(path.read_text())
        return ImportResult(str(path), "0" * 64, {})

    async def sleep(seconds: float) -> None:  # the injected clock: no real waiting
        sleeps.append(seconds)

    watcher = DropWatcher(tmp_path, import_file, sleep=sleep, interval_s=30)
    growing = tmp_path / "cdr.csv"
    growing.write_text("part 1\n")
    assert await watcher.poll() == []  # first sight: wait a round
    with growing.open("a") as handle:
        handle.write("part 2\n")
    assert await watcher.poll() == []  # it grew: wait again
    await watcher.run(rounds=2)
    assert imported == ["part 1\npart 2\n"] and sleeps == [30]
    assert (tmp_path / "processed" / "cdr.csv").exists()
    with pytest.raises(ValueError):
        DropWatcher(tmp_path, import_file, sleep=sleep, interval_s=0)
