"""A private PostgreSQL: the usage store of ``make run`` and of the tests.

Debian's ``postgresql`` package keeps ``initdb`` and ``postgres`` under
``/usr/lib/postgresql/<version>/bin`` (not on PATH). PostgreSQL refuses to run as root, and these
machines run everything as root, so when we are root the server runs as the ``postgres`` system
user the package creates: the cluster directory is chowned to it and the server process drops to
it (``Popen(user=...)``).

Layout under ``data_dir`` (``var/pg`` by default)::

    cluster/       PGDATA, owned by postgres, mode 0700; also the unix socket directory
    postgres.log   the server's stderr
    owner.secret   the product role's password (mode 0600), made once
    store.url      the product's URL (mode 0600): what ``resolve_store_url`` finds

Authentication: the superuser only over the unix socket inside the cluster directory (trust; the
directory is 0700, so only root and postgres reach it) for the one-time setup; everything else over
loopback TCP with a SCRAM password. The product connects as its own login role (``ocs``, owner of
the ``ocs`` database, CREATEROLE so it can create the tenant roles) with a random password made
once per cluster, never as the superuser. ``fsync=off`` only when the caller asks (tests).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ocs.embedded_redis import free_tcp_port

STORE_URL_FILE = "store.url"
OWNER_SECRET_FILE = "owner.secret"
STORE_URL_ENV = "OCS_STORE_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"
OWNER_ROLE = "ocs"
DATABASE = "ocs"
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class EmbeddedPostgresError(RuntimeError):
    """PostgreSQL is missing, would not start, or did not answer in time."""


class StoreSetupError(RuntimeError):
    """No store URL could be found; the message says where it was looked for."""


def find_pg_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``postgres``."""
    candidates: list[tuple[int, Path]] = []
    for bin_dir in Path("/").glob(PG_BIN_GLOB.lstrip("/")):
        version = bin_dir.parent.name
        if version.isdigit() and (bin_dir / "initdb").exists() and (bin_dir / "postgres").exists():
            candidates.append((int(version), bin_dir))
    if not candidates:
        initdb = shutil.which("initdb")
        if initdb is not None:
            return Path(initdb).parent
        raise EmbeddedPostgresError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install them "
            "(Debian: apt-get install -y postgresql) or pass --store-url to use an external store"
        )
    return max(candidates)[1]


def resolve_store_url(
    cli_url: str | None,
    *,
    data_dir: str | Path,
    config_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``--store-url``, else ``OCS_STORE_URL``, else config ``[store] url``, else
    ``<data_dir>/store.url`` (written by whoever started the embedded store), else an error."""
    if cli_url:
        return cli_url
    env = os.environ if environ is None else environ
    if env.get(STORE_URL_ENV):
        return env[STORE_URL_ENV]
    if config_url:
        return config_url
    url_file = Path(data_dir) / STORE_URL_FILE
    try:
        url = url_file.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        url = ""
    if url:
        return url
    raise StoreSetupError(
        f"no usage store to talk to: pass --store-url, set {STORE_URL_ENV}, set [store] url in "
        f"the config, or start the embedded store (`ocs store start`; it writes {url_file})"
    )


def _unreachable_ancestor(path: Path, uid: int, gid: int) -> Path | None:
    """The first ancestor of ``path`` the user ``uid`` may not traverse (None: all fine)."""
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None  # created later by us, with modes we choose
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return parent
    return None


class EmbeddedPostgres:
    """initdb (once), start, stop, kill and restart one private PostgreSQL on loopback.

    ``port=0`` picks a free port. The cluster survives a stop: a restart reuses it (the product
    role's password is renewed and ``store.url`` rewritten). ``settings`` are extra ``-c``
    server settings (e.g. ``{"max_connections": "200"}``).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        fsync: bool = True,
        settings: Mapping[str, str] | None = None,
        bin_dir: str | Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.cluster_dir = self.data_dir / "cluster"
        self.log_path = self.data_dir / "postgres.log"
        self.url_path = self.data_dir / STORE_URL_FILE
        self.host = host
        self.port = port
        self.fsync = fsync
        self.settings = dict(settings or {})
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._password = ""
        self._atexit_registered = False

    # -- facts -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The product's URL (owner role ``ocs``, database ``ocs``); valid once started."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql://{OWNER_ROLE}:{self._password}@{self.host}:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _run_as(self) -> tuple[int, int] | None:
        """(uid, gid) of the ``postgres`` user when we are root; None: run as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise EmbeddedPostgresError(
                "running as root and there is no 'postgres' system user to run PostgreSQL as "
                "(Debian's postgresql package creates it: apt-get install -y postgresql)"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _popen_user(self) -> dict[str, Any]:
        ids = self._run_as()
        if ids is None:
            return {}
        return {"user": ids[0], "group": ids[1], "extra_groups": []}

    # -- lifecycle ---------------------------------------------------------------------------

    def _initdb(self, bin_dir: Path) -> None:
        ids = self._run_as()
        self.cluster_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ids is not None:
            blocked = _unreachable_ancestor(self.cluster_dir, *ids)
            if blocked is not None:
                raise EmbeddedPostgresError(
                    f"the postgres user cannot enter {blocked} (mode "
                    f"{blocked.stat().st_mode & 0o777:o}): put the store's data dir somewhere it "
                    "can reach, or chmod o+x that directory"
                )
            os.chown(self.cluster_dir, *ids)
        os.chmod(self.cluster_dir, 0o700)
        command = [
            str(bin_dir / "initdb"),
            "-D", str(self.cluster_dir),
            "-U", SUPERUSER,
            "-E", "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]  # fmt: skip
        if not self.fsync:
            command.append("--no-sync")
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cluster_dir,
                env=self._env(),
                check=False,
                **self._popen_user(),
            )
        if done.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed; see {self.log_path}")
        # Ours, not initdb's defaults: no TCP login without a password, not even on loopback.
        hba = self.cluster_dir / "pg_hba.conf"
        hba.write_text(
            "# written by ocs.embedded_postgres\n"
            "# the superuser: only over the unix socket in this 0700 directory (setup)\n"
            f"local all {SUPERUSER} trust\n"
            "# everyone else: loopback TCP with a password\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n",
            encoding="utf-8",
        )
        if ids is not None:
            os.chown(hba, *ids)

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}

    def _command(self, bin_dir: Path) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.cluster_dir),
            "logging_collector": "off",
            # fsync off (tests) still survives a kill -9 of the server: only an OS crash loses
            # data. synchronous_commit stays on, so a committed batch is never lost to a kill.
            "fsync": "on" if self.fsync else "off",
            **({} if self.fsync else {"full_page_writes": "off"}),
            **self.settings,
        }
        command = [str(bin_dir / "postgres"), "-D", str(self.cluster_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def start(self, timeout_s: float = 60.0) -> str:
        """initdb if needed, start, set up the product role and database; returns ``url``."""
        if self.running:
            return self.url
        bin_dir = self._bin_dir or find_pg_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.cluster_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        chosen_port = self.port
        for _attempt in range(5):
            if chosen_port == 0:
                self.port = free_tcp_port(self.host)
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._command(bin_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cluster_dir,
                    env=self._env(),
                    start_new_session=True,  # a Ctrl-C on the terminal is ours to handle
                    **self._popen_user(),
                )
            if self._wait_ready(timeout_s):
                break
            self._signal_group(signal.SIGKILL)
            if chosen_port != 0:
                break
        else:
            self._proc = None
        if not self.running:
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start on {self.host}:{self.port}; see {self.log_path}"
            )
        self._setup_product()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        return self.url

    def superuser_connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit superuser connection over the private socket (setup and tests)."""
        return psycopg.connect(
            host=str(self.cluster_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with self.superuser_connect() as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def _owner_password(self) -> str:
        """Made once per cluster and kept (0600) beside it: the URL stays valid across restarts,
        so clients holding it (an exporter's pool) reconnect when the server is back."""
        path = self.data_dir / OWNER_SECRET_FILE
        try:
            password = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            password = ""
        if not password:
            password = secrets.token_hex(16)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(password + "\n")
        return password

    def _setup_product(self) -> None:
        """The product's login role, its database, and ``store.url``."""
        self._password = self._owner_password()
        with self.superuser_connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER_ROLE,))
            verb = "ALTER" if exists.fetchone() else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(OWNER_ROLE), sql.Literal(self._password)
                )
            )
            self._create_database(conn, DATABASE, template=None)
        self._write_url()

    def _write_url(self) -> None:
        tmp = self.url_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(self.url + "\n")
        os.replace(tmp, self.url_path)

    @staticmethod
    def _create_database(conn: psycopg.Connection[Any], name: str, template: str | None) -> None:
        if not _DB_NAME.fullmatch(name) or (template and not _DB_NAME.fullmatch(template)):
            raise EmbeddedPostgresError(f"database name {name!r}: expected [a-z_][a-z0-9_]*")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        query = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(OWNER_ROLE)
        )
        if template:
            query += sql.SQL(" TEMPLATE {} STRATEGY file_copy").format(sql.Identifier(template))
        conn.execute(query)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A database owned by the product role (tests: one per test); returns its URL."""
        with self.superuser_connect() as conn:
            self._create_database(conn, name, template)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        if not _DB_NAME.fullmatch(name):
            raise EmbeddedPostgresError(f"database name {name!r}: expected [a-z_][a-z0-9_]*")
        with self.superuser_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _signal_group(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if sig == signal.SIGKILL:
                    # The postmaster leads its own session: the group is it and its backends.
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._proc = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit); the URL file
        goes with it so ``ocs`` commands do not try a dead server."""
        was_running = self._proc is not None
        self._signal_group(signal.SIGINT)
        if was_running:
            with contextlib.suppress(FileNotFoundError):
                self.url_path.unlink()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def kill(self) -> None:
        """Crash simulation: SIGKILL to the postmaster and its backends; WAL replay on start."""
        self._signal_group(signal.SIGKILL)

    def restart(self, timeout_s: float = 60.0) -> str:
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
