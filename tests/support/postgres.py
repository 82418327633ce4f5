"""The tests' private PostgreSQL: one server per session, a fresh database per test.

The server's directory is made under /tmp with mode 0755, not under pytest's tmp_path: when the
tests run as root the server runs as ``postgres``, which cannot enter pytest's 0700 directories.
Each test's database is a copy of a template migrated once, so a test starts from the current
schema in a few tens of milliseconds.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from ocs.embedded_postgres import EmbeddedPostgres
from usage import migrate

TEMPLATE_DB = "ocs_test_template"


@contextmanager
def session_postgres() -> Iterator[EmbeddedPostgres]:
    base = tempfile.mkdtemp(prefix="ocs-test-pg-")
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(os.path.join(base, "pg"), fsync=False)
    try:
        server.start()
        migrate.apply(server.create_database(TEMPLATE_DB))
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_counter = itertools.count(1)


@contextmanager
def fresh_database(server: EmbeddedPostgres) -> Iterator[str]:
    """A database migrated to the current schema, dropped afterwards; yields its URL."""
    name = f"ocs_test_{os.getpid()}_{next(_counter)}"
    url = server.create_database(name, template=TEMPLATE_DB)
    try:
        yield url
    finally:
        server.drop_database(name)
