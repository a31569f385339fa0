"""``postgate campaign status ID --follow``: a live progress bar until the campaign ends.

The bar counts rows that reached a final state (sent, blocked, failed, cancelled) out of
all the campaign's rows, with the sent rate measured over the last few seconds; the line
beside it shows every count. It stops when the campaign is finished, cancelled or
rejected, and prints a plain summary line (also when the output is not a terminal).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from postgate.campaigns import progress

RATE_WINDOW_S = 5.0  # the sent rate is measured over the last seconds
COUNTS = (
    "[green]sent {task.fields[sent]}[/] · blocked {task.fields[blocked]} · "
    "[red]failed {task.fields[failed]}[/] · held {task.fields[held]} · "
    "open {task.fields[open]} · {task.fields[rate]}/s"
)


def _fields(p: progress.Progress, rate: float) -> dict[str, Any]:
    return {
        "sent": p.sent,
        "blocked": p.blocked,
        "failed": p.failed,
        "held": p.held,
        "open": p.open,
        "rate": f"{rate:,.0f}",
        "state": p.state,
    }


def _draw(
    engine: Engine, first: progress.Progress, interval: float, console: Console
) -> progress.Progress:
    """Redraw the bar every ``interval`` seconds until the campaign is terminal."""
    samples: deque[tuple[float, int]] = deque([(time.monotonic(), first.sent)])
    rate, current = 0.0, first
    columns = (
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[state]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(COUNTS),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(
            f"campaign {first.campaign_id} ({first.external_id})",
            total=max(first.total, 1),
            completed=first.done,
            **_fields(first, rate),
        )
        while not current.terminal:
            time.sleep(interval)
            with engine.connect() as conn:
                current = progress.read(conn, first.campaign_id) or current
            now = time.monotonic()
            samples.append((now, current.sent))
            while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
                samples.popleft()
            then, sent_then = samples[0]
            rate = (current.sent - sent_then) / (now - then) if now > then else rate
            bar.update(
                task, total=max(current.total, 1), completed=current.done, **_fields(current, rate)
            )
    return current


def follow(
    engine: Engine, campaign_id: int, interval: float = 0.5, console: Console | None = None
) -> int:
    """Show the bar until the campaign is terminal: 0 then, 1 when there is no such
    campaign, 130 when interrupted."""
    console = console or Console()
    with engine.connect() as conn:
        first = progress.read(conn, campaign_id)
    if first is None:
        console.print(f"no campaign {campaign_id}", style="red")
        return 1
    started = time.monotonic()
    try:
        current = _draw(engine, first, interval, console)
    except KeyboardInterrupt:
        return 130
    console.print(
        f"campaign {campaign_id} {current.state}: sent {current.sent}, "
        f"blocked {current.blocked}, failed {current.failed}, "
        f"cancelled {current.cancelled} of {current.total} "
        f"(followed {time.monotonic() - started:.1f} s)",
        highlight=False,
    )
    return 0
