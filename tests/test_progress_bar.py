"""``postgate campaign status ID [--follow]`` as a subprocess: the one-line JSON stays as it
was; ``--follow`` draws a live bar on a real pseudo-terminal while workers send, and exits
once the campaign is finished."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from tests.operator_page.background import workers_running
from tests.support import World
from tests.workers.switching import TimedHandler, bulk_audience

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=TimedHandler(delay=0.04)) as server:
        yield server


def cli(world: World, *args: str) -> list[str]:
    return [sys.executable, "-m", "postgate", "campaign", "status", *args]


def env_of(world: World) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": world.ctx.settings.database_url,
        "COLUMNS": "200",
        "LINES": "40",
    }


def campaign_id(world: World, external_id: str) -> int | None:
    c = t.campaign.c
    with world.ctx.engine.connect() as conn:
        return conn.scalar(
            select(c.id).where(c.tenant_id == world.tenant_id, c.external_id == external_id)
        )


def test_status_of_a_finished_campaign(world: World) -> None:
    for name in ("ada", "bea", "cy"):
        world.contact(name)
    world.contact("dan", consent=None)
    world.publish(world.message("done"))
    world.run(world.finished("done"))
    cid = campaign_id(world, "done")
    assert cid is not None
    env = env_of(world)
    plain = subprocess.run(
        cli(world, str(cid)), env=env, capture_output=True, text=True, timeout=60, check=True
    )
    line = json.loads(plain.stdout)
    assert line["state"] == "finished" and line["external_id"] == "done"
    own = subprocess.run(
        cli(world, "done", "--tenant", world.tenant.slug),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(own.stdout) == line  # the tenant's own campaign id works the same
    bare = subprocess.run(cli(world, "done"), env=env, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "--tenant SLUG" in bare.stderr
    assert sorted((d["state"], d["reason"], d["count"]) for d in line["deliveries"]) == [
        ("blocked", "no_consent", 1),
        ("sent", None, 3),
    ]
    followed = subprocess.run(
        cli(world, str(cid), "--follow"), env=env, capture_output=True, text=True, timeout=60
    )
    assert followed.returncode == 0, followed.stderr
    assert (
        f"campaign {cid} finished: sent 3, blocked 1, failed 0, cancelled 0 of 4" in followed.stdout
    )
    assert "4/4" in followed.stdout  # the bar, drawn once at the end off a terminal
    missing = subprocess.run(
        cli(world, "999999", "--follow"), env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "no campaign 999999" in missing.stdout


def read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return b"".join(chunks).decode(errors="replace")


def test_follow_draws_a_live_bar_until_the_campaign_finishes(world: World) -> None:
    bulk_audience(world, 300)
    world.publish(world.message("live"))
    with workers_running(world):
        deadline = time.monotonic() + 20
        while (cid := campaign_id(world, "live")) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cid is not None
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            cli(world, str(cid), "--follow", "--interval", "0.2"),
            env=env_of(world),
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        try:
            screen = ANSI.sub("", read_all(master, proc, timeout=90))
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, screen[-2000:]
    assert f"campaign {cid} finished: sent 300, blocked 0, failed 0, cancelled 0 of 300" in screen
    seen = {int(n) for n in re.findall(r"sent (\d+) ·", screen)}
    assert len(seen) >= 3 and max(seen) == 300, f"the bar did not move: {sorted(seen)}"
    assert "300/300" in screen and "/s" in screen
