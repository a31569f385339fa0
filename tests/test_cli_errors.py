"""The command line answers a mistake with one clear line and a non-zero exit, never a
traceback, and never creates an empty SQLite file in the current directory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from postgate.store.db import normalise_url


def postgate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postgate", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=120,
        env=os.environ | {"SECRET_KEY": "c" * 40} | env,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_before_db_upgrade_a_command_says_so_and_creates_nothing(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "sqlite:///postgate.db"}
    line = one_line(postgate(tmp_path, "keys", "create", "--tenant", "acme", **env))
    assert "no database at 'postgate.db'" in line and "postgate db upgrade" in line
    assert not (tmp_path / "postgate.db").exists()
    assert postgate(tmp_path, "db", "upgrade", **env).returncode == 0
    line = one_line(postgate(tmp_path, "keys", "create", "--tenant", "acme", **env))
    assert line == "error: unknown tenant 'acme'"


def test_a_postgresql_database_without_the_schema_says_run_db_upgrade(tmp_path: Path) -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("needs DATABASE_URL=postgresql://...")
    base = make_url(normalise_url(url))
    name = f"empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        empty = base.set(database=name).render_as_string(hide_password=False)
        line = one_line(postgate(tmp_path, "dead-letters", DATABASE_URL=empty))
        assert "has no postgate schema yet" in line and "postgate db upgrade" in line
        gone = base.set(database=f"{name}_missing").render_as_string(hide_password=False)
        assert "database problem at" in one_line(
            postgate(tmp_path, "dead-letters", DATABASE_URL=gone)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
