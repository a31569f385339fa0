"""The consent gate, rule by rule, and the 12-month freshness rule at its boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postgate.core.clock import add_months
from postgate.core.gate import ConsentView, GateCampaign, Recipient, decide, is_fresh
from postgate.core.states import BlockReason as R

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
PROMO = GateCampaign(tenant_id=1, kind="promotional")
TRANSACTIONAL = GateCampaign(tenant_id=1, kind="transactional")


def doi(days: float = 10, status: str = "confirmed", tenant_id: int = 1) -> ConsentView:
    when = NOW - timedelta(days=days)
    return ConsentView(tenant_id, "signup_form", status, when, confirmed_at=when)


def rcpt(consent: ConsentView | None = None, **kw: object) -> Recipient:
    return Recipient(
        contact_id=1, address=str(kw.pop("address", "a@x.example")), consent=consent, **kw
    )  # type: ignore[arg-type]


def test_confirmed_double_opt_in_passes() -> None:
    assert decide(PROMO, rcpt(doi()), NOW) is None


def test_each_rule_blocks_with_its_reason() -> None:
    cases = {
        R.NO_ADDRESS: rcpt(doi(), address=""),
        R.NO_CONSENT: rcpt(None),
        R.OTHER_TENANT: rcpt(doi(tenant_id=2)),
        R.CONSENT_UNCONFIRMED: rcpt(doi(status="pending")),
        R.CONSENT_WITHDRAWN: rcpt(doi(status="withdrawn")),
        R.SUPPRESSED: rcpt(doi(), suppression="unsubscribe"),
        R.CONSENT_STALE: rcpt(doi(days=400)),
    }
    for reason, recipient in cases.items():
        assert decide(PROMO, recipient, NOW) == reason


def test_provenance_rules() -> None:
    when = NOW - timedelta(days=5)
    unticked = ConsentView(1, "purchase", "confirmed", when, marketing_checkbox=False)
    ticked = ConsentView(1, "purchase", "confirmed", when, marketing_checkbox=True)
    written = ConsentView(1, "written_consent", "confirmed", when, evidence_ref="scan-1")
    unproven = ConsentView(1, "written_consent", "confirmed", when)
    bought = ConsentView(1, "purchased", "confirmed", when, evidence_ref="list vendor")
    assert decide(PROMO, rcpt(unticked), NOW) == R.CONSENT_UNPROVEN
    assert decide(PROMO, rcpt(ticked), NOW) is None
    assert decide(PROMO, rcpt(written), NOW) is None
    assert decide(PROMO, rcpt(unproven), NOW) == R.CONSENT_UNPROVEN
    assert decide(PROMO, rcpt(bought), NOW) == R.CONSENT_UNPROVEN


def test_transactional_skips_consent_but_not_a_complaint() -> None:
    assert decide(TRANSACTIONAL, rcpt(None), NOW) is None
    assert decide(TRANSACTIONAL, rcpt(None, suppression="unsubscribe"), NOW) is None
    for reason in ("complaint", "hard_bounce", "erasure"):
        assert decide(TRANSACTIONAL, rcpt(None, suppression=reason), NOW) == R.SUPPRESSED


def test_old_consent_kept_alive_by_a_promotional_send_within_twelve_months() -> None:
    consent = doi(days=500)
    within = consent.given_at + timedelta(days=100)
    too_late = add_months(consent.given_at, 12) + timedelta(seconds=1)
    assert decide(PROMO, rcpt(consent, promo_sends=(within,)), NOW) is None
    assert decide(PROMO, rcpt(consent, promo_sends=(too_late,)), NOW) == R.CONSENT_STALE
    before = consent.given_at - timedelta(days=1)
    assert decide(PROMO, rcpt(consent, promo_sends=(before,)), NOW) == R.CONSENT_STALE


def test_double_opt_in_counts_from_confirmation() -> None:
    consent = ConsentView(
        1,
        "signup_form",
        "confirmed",
        NOW - timedelta(days=380),
        confirmed_at=NOW - timedelta(days=300),
    )
    assert decide(PROMO, rcpt(consent), NOW) is None


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@given(given_at=instants, offset=st.integers(min_value=-(10**6), max_value=10**6))
def test_freshness_boundary_is_exactly_twelve_calendar_months(
    given_at: datetime, offset: int
) -> None:
    consent = ConsentView(1, "written_consent", "confirmed", given_at, evidence_ref="e")
    now = add_months(given_at, 12) + timedelta(seconds=offset)
    assert is_fresh(consent, (), now) is (offset <= 0)


@given(
    given_at=instants,
    send_offset=st.integers(min_value=-(10**6), max_value=10**6),
    later=st.integers(min_value=1, max_value=3650),
)
def test_a_send_keeps_consent_alive_only_inside_the_window(
    given_at: datetime, send_offset: int, later: int
) -> None:
    consent = ConsentView(1, "written_consent", "confirmed", given_at, evidence_ref="e")
    horizon = add_months(given_at, 12)
    now = horizon + timedelta(days=later)
    sent = horizon + timedelta(seconds=send_offset)
    assert is_fresh(consent, (sent,), now) is (given_at <= sent <= horizon)
