"""Property tests for the pure consent rules added with imports and late suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postgate.consent.imports import Provenance, check_rows
from postgate.consent.send_checks import suppressed_rows
from postgate.core.clock import add_months
from postgate.core.gate import HARD_SUPPRESSIONS

NOW = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)
DECL = Provenance.model_validate(
    {"source": "event", "topic": "news", "collected_at": NOW, "evidence": "stand at the fair"}
)


@given(st.integers(min_value=-5 * 24 * 3600, max_value=400 * 24 * 3600))
def test_six_month_hygiene_boundary(seconds_ago: int) -> None:
    consented = NOW - timedelta(seconds=seconds_ago)
    csv_text = f"email,consented_at\na@example.com,{consented.isoformat()}\n"
    checked = check_rows(csv_text, DECL, NOW)
    fresh = add_months(NOW, -6) <= consented <= NOW + timedelta(days=1)
    assert (len(checked.rows), len(checked.report)) == ((1, 0) if fresh else (0, 1))


@given(st.integers(min_value=-3 * 24 * 3600, max_value=400 * 24 * 3600))
def test_last_activity_boundary(seconds_ago: int) -> None:
    active = NOW - timedelta(seconds=seconds_ago)
    csv_text = f"email,last_activity_at\na@example.com,{active.isoformat()}\n"
    checked = check_rows(csv_text, DECL, NOW)
    assert bool(checked.rows) == (active >= add_months(NOW, -6))


REASONS = st.sampled_from(["unsubscribe", "complaint", "hard_bounce", "stop", "manual", "erasure"])


@given(
    st.dictionaries(st.sampled_from(["a@x", "b@x", "c@x", "d@x"]), REASONS),
    st.sampled_from(["promotional", "transactional"]),
    st.sampled_from(["email", "sms"]),
)
def test_late_suppression_blocks_what_the_gate_would(
    found: dict[str, str], kind: str, channel: str
) -> None:
    """As the gate for mail; an SMS of any kind never goes to a suppressed number."""
    rows = [(1, "a@x"), (2, "b@x"), (3, "c@x"), (4, "d@x")]
    blocked = set(suppressed_rows(found, kind, rows, channel))
    for delivery_id, address in rows:
        reason = found.get(address)
        expected = reason is not None and (
            kind == "promotional" or channel == "sms" or reason in HARD_SUPPRESSIONS
        )
        assert (delivery_id in blocked) == expected
