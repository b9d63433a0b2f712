"""A throwaway PostgreSQL cluster for tests and benchmarks, or an existing server.

`Cluster.start()` runs initdb in a temporary directory as an unprivileged OS user (tests may
run as root, which PostgreSQL refuses: then as `postgres`, created if missing), listens on a
free loopback port only, and `stop()` removes it all. With PROMO_TEST_POSTGRES_URL set (a
role that may create databases and roles), no cluster is started and that server is used.

Each ledger is a database of its own, cloned from a template that holds the ledger's tables,
owned by the superuser, with the application's role (`promo_app`) granted only what the
application may do (no UPDATE or DELETE on events). The URL handed to the code under test is
the application role's.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from redemption_core.ledger.postgres import init_ledger

APP_ROLE = "promo_app"
TEMPLATE = "promo_ledger_template"
_names = itertools.count()


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        bindir = Path(subprocess.check_output([found, "--bindir"], text=True).strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, *, fsync: bool = False, settings: dict[str, str] | None = None) -> None:
        self.external = os.environ.get("PROMO_TEST_POSTGRES_URL") or None
        self.fsync = fsync
        self.settings = settings or {}
        self.directory: Path | None = None
        self.port = 0
        self._as_user: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Cluster:
        if self.external is None:
            self._init()
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.directory / "server.log"))
        self._prepare_template()
        return self

    def _init(self) -> None:
        bindir = _bindir()
        self._bin = bindir
        self.directory = Path(tempfile.mkdtemp(prefix="promo-pg-"))
        self.port = _free_port()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            shutil.chown(self.directory, "postgres")
            os.chmod(self.directory, 0o700)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *self._as_user,
                str(bindir / "initdb"),
                "-D",
                str(self.directory / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "fsync": "on" if self.fsync else "off",
            "max_connections": "100",
            **self.settings,
        }
        with (self.directory / "data" / "postgresql.conf").open("a") as conf:
            for key, value in options.items():
                conf.write(f"{key} = '{value}'\n")

    def _pg_ctl(self, *args: str) -> None:
        assert self.directory is not None
        subprocess.run(
            [*self._as_user, str(self._bin / "pg_ctl"), "-D", str(self.directory / "data"), *args],
            check=True,
            capture_output=True,
        )

    def restart(self, *, immediate: bool = True) -> None:
        """Stop the server as a crash would (immediate: no checkpoint, recovery at start)."""
        self.stop_server(immediate=immediate)
        self.start_server()

    def stop_server(self, *, immediate: bool = True) -> None:
        self._pg_ctl("stop", "-m", "immediate" if immediate else "fast", "-w")

    def start_server(self) -> None:
        assert self.directory is not None
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.directory / "server.log"))

    def stop(self) -> None:
        if self.external is not None or self.directory is None:
            return
        try:
            self._pg_ctl("stop", "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # -- URLs and databases --------------------------------------------------------------------
    def admin_url(self, database: str = "postgres") -> str:
        if self.external is not None:
            info = psycopg.conninfo.conninfo_to_dict(self.external)
            info["dbname"] = database
            return psycopg.conninfo.make_conninfo(**info)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def app_url(self, database: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url(database))
        info["user"] = APP_ROLE
        info.pop("password", None)
        if self.external is not None:
            info["password"] = APP_ROLE
        return "postgresql://{user}{pw}@{host}:{port}/{dbname}".format(
            user=info["user"],
            pw=f":{info['password']}" if "password" in info else "",
            host=info.get("host", "127.0.0.1"),
            port=info.get("port", 5432),
            dbname=database,
        )

    def _prepare_template(self) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as db:
            if not db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
                db.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_ROLE}'")
            db.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            db.execute(f"CREATE DATABASE {TEMPLATE}")
        init_ledger(self.admin_url(TEMPLATE), APP_ROLE)

    def create_ledger(self, *, empty: bool = False) -> str:
        """A fresh ledger database; the application role's URL. `empty`: no tables at all
        (for the first-open tests), owned by the application role."""
        name = f"ledger_{os.getpid()}_{next(_names)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.admin_url(), autocommit=True) as db:
            if empty:
                db.execute(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
            else:
                db.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.app_url(name)

    def drop_ledger(self, url: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url(), autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
