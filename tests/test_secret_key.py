"""There is no default SECRET_KEY: the api and every worker refuse to start without one of
at least 32 characters (one line on stderr, exit 2, no traceback); `postgate secret new`
makes one, printed or written to a 0600 file that SECRET_KEY_FILE points at."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from postgate.http.app import create_app
from postgate.settings import MIN_SECRET_CHARS, MissingSecret, Settings
from postgate.workers.main import serve
from tests.workers.fleet import Fleet, wait_until

REFUSAL = (
    "SECRET_KEY is not set (or shorter than 32 characters): generate one with "
    "'postgate secret new' and put it in the environment"
)


def without_secret(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEY_FILE")}
    return env | {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_PREFIX": settings.queue_prefix,
        **extra,
    }


def postgate(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_default_is_no_key_and_short_keys_are_refused() -> None:
    assert Settings.model_fields["secret_key"].default == ""
    for key in ("", "change-me-in-production", "x" * (MIN_SECRET_CHARS - 1)):
        with pytest.raises(MissingSecret) as refused:
            Settings(secret_key=key).require_secret()
        assert str(refused.value) == REFUSAL
    assert Settings(secret_key="k" * MIN_SECRET_CHARS).require_secret() == "k" * 32


def test_previous_keys_are_a_json_list_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().secret_keys_previous == []
    monkeypatch.setenv("SECRET_KEYS_PREVIOUS", '["old-one", "older"]')
    assert Settings().secret_keys_previous == ["old-one", "older"]


def test_the_key_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY")
    path = tmp_path / "secret"
    path.write_text("f" * 40 + "\n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(path))
    assert Settings().require_secret() == "f" * 40
    monkeypatch.setenv("SECRET_KEY", "e" * 40)  # SECRET_KEY wins over the file
    assert Settings().secret_key == "e" * 40
    monkeypatch.delenv("SECRET_KEY")
    path.write_text("short\n")
    with pytest.raises(MissingSecret, match=r"SECRET_KEY is not set .*SECRET_KEY_FILE"):
        Settings().require_secret()
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(MissingSecret, match=r"^SECRET_KEY_FILE .*missing.* cannot be read"):
        Settings().require_secret()


def test_create_app_and_serve_refuse_without_a_key(settings: Settings) -> None:
    keyless = settings.model_copy(update={"secret_key": ""})
    with pytest.raises(MissingSecret):
        create_app(keyless)
    with pytest.raises(MissingSecret):
        serve(keyless, ["sweeper"])


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "sweeper"],
        ["worker", "planner", "sender"],
        ["worker", "feedback"],
        ["worker", "retention"],
        ["api"],
    ],
)
@pytest.mark.parametrize("key", ["", "too-short"])
def test_processes_refuse_to_start_without_a_key(
    settings: Settings, command: list[str], key: str
) -> None:
    args = [*command, "--port", str(free_port())] if command == ["api"] else command
    env = without_secret(settings, **({"SECRET_KEY": key} if key else {}))
    done = postgate(*args, env=env, timeout=30)
    assert done.returncode == 2, done
    assert done.stderr == REFUSAL + "\n"  # one line, no traceback
    assert done.stdout == ""


def test_secret_new_prints_a_fresh_key(settings: Settings) -> None:
    keys = {postgate("secret", "new", env=without_secret(settings)).stdout for _ in range(2)}
    assert len(keys) == 2
    for key in keys:
        assert key.endswith("\n") and len(key.strip()) == 64  # token_urlsafe(48)


def test_secret_new_writes_a_0600_file_that_a_worker_accepts(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "postgate.secret"
    env = without_secret(settings)
    written = postgate("secret", "new", "--write", str(path), env=env)
    assert written.returncode == 0, written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert len(key) == 64 and key not in written.stdout  # the key is not echoed
    again = postgate("secret", "new", "--write", str(path), env=env)
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert path.read_text().strip() == key

    refused = postgate("worker", "sweeper", env=env | {"SECRET_KEY_FILE": str(tmp_path / "no")})
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("SECRET_KEY_FILE ")

    fleet = Fleet(settings, tmp_path)
    proc = fleet.spawn("sweeper", SECRET_KEY="", SECRET_KEY_FILE=str(path))
    try:
        assert wait_until(
            lambda: (
                "workers sweeper starting" in fleet.tail("sweeper-0") or proc.poll() is not None
            ),
            timeout=30,
        )
        assert proc.poll() is None, fleet.tail("sweeper-0")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, fleet.tail("sweeper-0")
    assert "SECRET_KEY" not in fleet.tail("sweeper-0")
