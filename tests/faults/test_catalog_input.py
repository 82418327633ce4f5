"""Finding 4 of issue #11: every bad catalog gets ``file:line``, never a traceback, and a running
server handed a bad catalog through a reload keeps the one it has and logs why."""

from __future__ import annotations

import inspect
import json
import random
import sys
import time
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocs.catalog_store import CATALOG_KEY
from ocs.charging.notifications import NOTIFY_CHANNEL, encode_notice
from ocs.embedded_redis import EmbeddedRedis
from tariffs.errors import CatalogError
from tariffs.loader import load_texts
from tests.faults.test_redis_restart import CATALOG, _client, _session_code
from tests.support.server_process import ServerProcess
from tests.tariffs.catalogs import GOLDEN, MINIMAL

EXAMPLE = (Path(CATALOG) / "acme.yaml").read_text()
TZ_LINE = "timezone: Europe/Berlin"


def _log(server: ServerProcess) -> str:
    """The server's whole log (``log_text`` is only its tail)."""
    return server.log_path.read_text(errors="replace")


def _problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_texts([("c.yaml", text)])
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    "zone",
    ["Europe", "Europe/", "A" * 300, "Europe/" + "B" * 300, "../../../etc/passwd", "/etc/localtime",
     "Europe//Berlin", "Europe/Berlin\\x00", "."],
)  # fmt: skip
def test_a_bad_timezone_is_a_file_line_problem(zone: str) -> None:
    assert TZ_LINE in GOLDEN
    problems = _problems(GOLDEN.replace(TZ_LINE, f"timezone: {json.dumps(zone)}"))
    assert problems == [
        f"c.yaml:4: timezone: {zone!r} is not an IANA time zone (e.g. Europe/Berlin)"
    ]


def test_deep_nesting_is_a_file_line_problem() -> None:
    for depth in (50, 500, 5000, 50_000):
        for opener, closer in (("[", "]"), ("{a: ", "}")):
            text = MINIMAL + "x: " + opener * depth + "1" + closer * depth + "\n"
            problems = _problems(text)
            assert problems and all(p.startswith("c.yaml:") for p in problems)


def test_nesting_deeper_than_the_stack_is_a_file_line_problem() -> None:
    """A catalog composed on a thread or task with little stack left: the RecursionError the
    fuzzing met becomes a problem, not a traceback."""
    text = MINIMAL + "x: " + "[" * 400 + "]" * 400 + "\n"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 120)
    try:
        problems = _problems(text)
    finally:
        sys.setrecursionlimit(limit)
    assert problems and all(p.startswith("c.yaml:") for p in problems), problems


_TOKENS = ["[", "]", "{", "}", ": ", "- ", "\n", "  ", "&a ", "*a", "<<: ", "!!str ", "'", '"',
           ",", "|", "#", "Europe", "9" * 30, "\x00", "\t", "1e999", "P99999999D", "25:00",
           "timezone: ", "A" * 300]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([GOLDEN, MINIMAL, EXAMPLE]), st.integers(0, 2**32 - 1))
def test_mutated_catalogs_give_only_file_line_problems(seed_text: str, seed: int) -> None:
    """Bounded mutation fuzz (300 catalogs, 1-6 edits each: insert a token run, cut, splice)."""
    rng = random.Random(seed)
    text = seed_text
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.4:
            text = text[:at] + rng.choice(_TOKENS) * rng.choice((1, 1, 2, 50, 2000)) + text[at:]
        elif choice < 0.7:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        else:
            start = rng.randrange(len(text))
            text = text[:at] + text[start : start + rng.randint(1, 60)] + text[at:]
    try:
        load_texts([("m.yaml", text)])
    except CatalogError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert str(problem).startswith("m.yaml:"), problem


def test_a_running_server_keeps_its_catalog_when_a_bad_one_is_published(
    private_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "ocs", redis_url=private_redis.url, catalog=CATALOG)
    server.start()
    try:
        client = _client(server)
        assert _session_code(client, "4917099000050") == 2001
        admin = redis.Redis.from_url(private_redis.url)
        # Written past `ocs catalog load` (which refuses it): an older version, a hand edit.
        admin.hset(CATALOG_KEY, "acme.yaml", EXAMPLE.replace(TZ_LINE, "timezone: Europe"))
        admin.publish(NOTIFY_CHANNEL, encode_notice("", "", "catalog"))
        admin.close()
        deadline = time.monotonic() + 30
        while "catalog_reload_refused" not in _log(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = _log(server)
        assert "catalog_reload_refused" in log, log
        assert "acme.yaml:" in log and "is not an IANA time zone" in log
        assert "Traceback" not in log
        assert _session_code(client, "4917099000050") == 2001  # still the old catalog
        client.close()
    finally:
        server.stop()
