"""Core ``Table`` objects for the hot paths, where ORM objects would cost too much."""

from __future__ import annotations

from postgate.store.schema import metadata

consent = metadata.tables["consent"]
contact = metadata.tables["contact"]
list_member = metadata.tables["list_member"]
mailing_list = metadata.tables["mailing_list"]
suppression = metadata.tables["suppression"]
tenant = metadata.tables["tenant"]
campaign = metadata.tables["campaign"]
delivery = metadata.tables["delivery"]
feedback_event = metadata.tables["feedbackevent"]
audit_log = metadata.tables["audit_log"]
dead_letter = metadata.tables["dead_letter"]
signup_form = metadata.tables["signup_form"]
pending_signup = metadata.tables["pending_signup"]
list_import = metadata.tables["list_import"]
sending_block = metadata.tables["sending_block"]
api_key = metadata.tables["api_key"]
sms_part = metadata.tables["sms_part"]
sender_domain = metadata.tables["sender_domain"]
operator_session = metadata.tables["operator_session"]
event_outbox = metadata.tables["event_outbox"]
webhook_endpoint = metadata.tables["webhook_endpoint"]
webhook_dead_letter = metadata.tables["webhook_dead_letter"]
contact_ref = metadata.tables["contact_ref"]
contact_sync = metadata.tables["contact_sync"]
domain_preflight = metadata.tables["domain_preflight"]
warmup_day = metadata.tables["warmup_day"]
tenant_profile = metadata.tables["tenant_profile"]
