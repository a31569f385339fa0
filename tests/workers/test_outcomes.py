"""The sender's outcome buffer: flushes by count and by time, in order, and outcomes a
flush could not write (the database was away) are written when it is back."""

from __future__ import annotations

import asyncio

import pytest

from postgate.workers.outcomes import Outcomes


class Database:
    """Stands in for the delivery table's writer: it is down for ``down`` writes."""

    def __init__(self, down: int = 0) -> None:
        self.down, self.rows, self.calls = down, [], 0

    async def write(self, items: list[int]) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down > 0:
            self.down -= 1
            raise ConnectionError("database is down")
        self.rows.extend(items)


def test_flushes_by_count_and_by_time_in_order() -> None:
    db = Database()

    async def go() -> None:
        outcomes = Outcomes(db.write, count=4, interval=0.05)
        for i in range(10):
            outcomes.add(i)
        await asyncio.sleep(0)  # two full flushes are under way, two outcomes wait
        await asyncio.sleep(0.1)  # the timer flushes the rest
        assert db.rows == list(range(10)) and db.calls == 3
        outcomes.add(10)
        await outcomes.close()

    asyncio.run(go())
    assert db.rows == list(range(11))


def test_outcomes_a_failed_flush_kept_are_written_when_the_database_is_back() -> None:
    db = Database(down=2)

    async def go() -> None:
        outcomes = Outcomes(db.write, count=3, interval=10)
        for i in range(6):
            outcomes.add(i)
        await outcomes.close(retries=(0.01, 0.01, 0.01))

    asyncio.run(go())
    assert sorted(db.rows) == list(range(6))


def test_closing_raises_when_the_database_stays_away() -> None:
    db = Database(down=100)

    async def go() -> None:
        outcomes = Outcomes(db.write, count=3, interval=10)
        outcomes.add(1)
        await outcomes.close(retries=(0.01, 0.01))

    with pytest.raises(ConnectionError):
        asyncio.run(go())
    assert db.rows == []
