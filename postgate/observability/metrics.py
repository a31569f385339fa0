"""Prometheus metrics. Labels stay bounded: tenant slugs, channels, outcomes, reasons."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from postgate.core.bounce_reasons import BounceReason

MESSAGES = Counter(
    "postgate_messages_total",
    "Messages handed to a provider, by outcome (sent, deferred, failed).",
    ["tenant", "channel", "provider", "outcome"],
)
BLOCKED = Counter(
    "postgate_blocked_total",
    "Recipients the gate or the sender refused, by reason.",
    ["tenant", "channel", "reason"],
)
PLANNED = Counter(
    "postgate_planned_total", "Delivery rows written by the planner.", ["tenant", "channel"]
)
DEAD_LETTERS = Counter(
    "postgate_dead_letters_total", "Queue messages moved to the dead-letter queue.", ["queue"]
)
JOBS = Counter(
    "postgate_jobs_total", "Queue jobs handled by a runner, by result.", ["queue", "result"]
)
SEND_SECONDS = Histogram(
    "postgate_send_seconds",
    "Time to hand one message to a provider (SMTP transaction).",
    ["channel", "provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SECONDS = Histogram(
    "postgate_batch_seconds",
    "Time to process one send batch end to end.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSENT_EVENTS = Counter(
    "postgate_consent_events_total",
    "Consent-side events: signup, confirmation_sent, confirmation_capped, contact_limit "
    "(a signup refused by the tenant's max_contacts), confirmed, unsubscribed, import_row, "
    "import_dropped.",
    ["tenant", "event"],
)
CONTENT_VERDICTS = Counter(
    "postgate_content_verdicts_total",
    "Campaigns the content policy allowed, flagged or blocked.",
    ["tenant", "channel", "verdict"],
)
CONTENT_MATCHES = Counter(
    "postgate_content_matches_total",
    "Campaigns matching a content lexicon category.",
    ["tenant", "category"],
)
CONTENT_CHECK_SECONDS = Histogram(
    "postgate_content_check_seconds",
    "Time to review one campaign's content (sample render and lexicon scan).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
DKIM_SIGN_SECONDS = Histogram(
    "postgate_dkim_sign_seconds",
    "Time to DKIM-sign one message.",
    ["algorithm"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
)
DKIM_POOL_RESTARTS = Counter(
    "postgate_dkim_pool_restarts_total",
    "DKIM signing processes started again after one died (killed, out of memory).",
)
PROVIDER_ERRORS = Counter(
    "postgate_provider_errors_total",
    "Provider failures that were not a recipient's answer (connect, connection lost).",
    ["channel", "provider", "kind"],
)
FEEDBACK = Counter(
    "postgate_feedback_total",
    "Feedback events applied, by kind (bounce_hard, bounce_soft, complaint, unsubscribe, "
    "delay, auto_reply, unknown) and a bounce's reason (user_unknown, policy_block, "
    "auth_failure, ...; none for other kinds); refusals at send time included.",
    ["tenant", "channel", "kind", "reason"],
)
FEEDBACK_UNVERIFIED = Counter(
    "postgate_feedback_unverified_total",
    "Feedback kept but not acted upon: no valid signed reference (forged, garbled, too old) "
    "or a bounce naming another recipient, by source, kind and reason.",
    ["source", "kind", "reason"],
)
SNS_REQUESTS = Counter(
    "postgate_sns_requests_total",
    "Amazon SNS deliveries to the SES webhook that were accepted, by SNS type and result "
    "(applied, duplicate, ignored, confirmed, unsubscribed).",
    ["type", "result"],
)
SNS_REFUSED = Counter(
    "postgate_sns_refused_total",
    "SNS deliveries refused, by reason: malformed, unsigned, signature (forged), topic (not "
    "ours), cert_host, certificate, subscribe_host, unavailable (certificate host down).",
    ["reason"],
)
BREAKER_TRIPS = Counter(
    "postgate_breaker_trips_total",
    "Tenants switched off by the circuit breaker, by reason and resulting state.",
    ["tenant", "reason", "state"],
)
SENDING_BLOCKS = Counter(
    "postgate_sending_block_changes_total",
    "Kill-switch changes by operators, by scope and action (set, clear).",
    ["tenant", "scope", "action"],
)
CANARY = Counter(
    "postgate_canary_total", "Canary slices judged, by outcome (continue, halt).", ["outcome"]
)
SHAPING_ACTIONS = Counter(
    "postgate_shaping_actions_total",
    "Traffic-shaping automations started by a reply, by provider group (from the shaping "
    "file), rule and action (slow, suspend, suspend_tenant).",
    ["group", "rule", "action"],
)
SHAPING_DEFERRED = Counter(
    "postgate_shaping_deferred_total",
    "Direct-to-MX sends deferred by traffic shaping, by provider group and reason (rate, "
    "connections, suspend, suspend_tenant, unavailable: the shared state is unreachable).",
    ["group", "reason"],
)
# Gauges read from the database at scrape time live in postgate/campaigns/gauges.py:
# postgate_tenant_state, postgate_sending_blocks_active, postgate_deliveries_open,
# postgate_queue_lag_seconds, postgate_broker_messages, postgate_breaker_window; the event
# stream's (postgate_events_oldest_undelivered_seconds, postgate_webhook_endpoint_paused)
# in postgate/events/gauges.py.


def reason_label(reason: str) -> str:
    """A bounce reason as a bounded label value: one of BounceReason, else other or none."""
    if not reason:
        return "none"
    return reason if reason in REASONS else "other"


REASONS = frozenset(str(r) for r in BounceReason)


EVENTS_PRODUCED = Counter(
    "postgate_events_produced_total",
    "event.v1 events entered into the stream (stamped), by type.",
    ["tenant", "type"],
)
EVENTS_PUBLISHED = Counter(
    "postgate_events_published_total", "Events published to the event exchange.", ["tenant"]
)
WEBHOOK_EVENTS = Counter(
    "postgate_webhook_events_total",
    "Events posted to webhook endpoints, by result: delivered, retried (the post failed and "
    "will be tried again), dead_lettered (given up after the retry window).",
    ["tenant", "endpoint", "result"],
)
WEBHOOK_PAUSES = Counter(
    "postgate_webhook_pauses_total",
    "Webhook endpoints paused after failing for the whole retry window.",
    ["tenant", "endpoint"],
)
PREFLIGHT_CHECKS = Counter(
    "postgate_preflight_checks_total",
    "Sender-domain authentication preflight checks (spf, dmarc, dkim, mta_sts, tls_rpt) run, "
    "by result (pass, fail).",
    ["tenant", "check", "result"],
)
PREFLIGHT_REFUSALS = Counter(
    "postgate_preflight_refusals_total",
    "Bulk campaigns refused at acceptance because their From domain fails the preflight.",
    ["tenant"],
)
UNSIGNED_BULK = Counter(
    "postgate_unsigned_bulk_campaigns_total",
    "Bulk email campaigns accepted From a tenant's primary domain that is no sender domain "
    "(seeded before provisioning claimed it): not DKIM-signed, not judged by the preflight.",
    ["tenant"],
)
WARMUP_WAITING = Counter(
    "postgate_warmup_deferred_total",
    "Messages of warming domains put off to the next day: their provider group's daily cap "
    "was used up, by group.",
    ["group"],
)
WARMUP_REVIEWS = Counter(
    "postgate_warmup_reviews_total",
    "Daily warm-up reviews of sending domains, by the state they left the domain in "
    "(warming: moved on, held: kept or stepped back, done: warm).",
    ["state"],
)
