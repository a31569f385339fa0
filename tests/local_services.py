"""Throwaway Redis, PostgreSQL and RabbitMQ servers on free 127.0.0.1 ports, to restart at
will.

Restart tests and the soak script stop and start these, never the shared services other
suites use. Redis runs without persistence, so a restart also empties every queue (the
harshest case: messages in the broker are gone). PostgreSQL gets its own cluster in a
temporary directory (initdb, trust auth); as root it runs as the ``postgres`` user.
RabbitMQ runs as a node of its own (own name, ports, database directory, Erlang cookie and
no plugins) beside any node the machine already has.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} in {timeout}s")


class _ServerProcess:
    """A server this module runs as a child process on ``port``: stop, restart, close."""

    port: int
    dir: str | Path
    proc: subprocess.Popen[bytes] | None = None
    stop_timeout_s = 10.0

    def start(self) -> _ServerProcess:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _wait_port(self.port, up=False)

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalRedis(_ServerProcess):
    """``redis-server`` on its own port, no persistence; ``restart()`` loses all data."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.proc = None

    @property
    def available(self) -> bool:
        return self.binary is not None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> LocalRedis:
        assert self.binary, "redis-server not installed"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)
        return self


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class LocalPostgres:
    """A PostgreSQL cluster of its own; ``restart()`` drops every client connection."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl) and (
            not self._as or shutil.which("runuser") is not None
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> LocalPostgres:
        assert self.initdb and self.pg_ctl, "PostgreSQL binaries not installed"
        if not self.data.exists():
            if self._as:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(
                self.initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        assert self.pg_ctl, "PostgreSQL binaries not installed"
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "-m",
            "fast",
            action,
        )
        _wait_port(self.port, up=action != "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop")

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self._ctl("start")

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalRabbit(_ServerProcess):
    """A RabbitMQ node of its own; ``restart()`` drops every AMQP connection. Its durable
    queues and persistent messages survive the restart, as on a real broker."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    stop_timeout_s = 60.0  # the node shuts down cleanly on SIGTERM

    def __init__(self) -> None:
        self.port, self.dist_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rabbit-"))
        self.name = f"postgate{self.port}@localhost"
        self.proc = None

    @property
    def available(self) -> bool:
        return os.access(self.SERVER, os.X_OK)

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        return os.environ | {
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> LocalRabbit:
        with (self.dir / "server.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [self.SERVER], env=self._env(), cwd=self.dir, stdout=out, stderr=subprocess.STDOUT
            )
        _wait_port(self.port, up=True, timeout=60)
        return self
