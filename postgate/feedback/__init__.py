"""Feedback: every signal that comes back about a delivery, and the one place it is applied.

Parsers turn each source into feedback values: returned mail (``mail``: DSN, ARF,
auto-replies, unsubscribe mailto), provider webhooks (``http.webhooks``), SMS delivery
reports and replies (``sms``), unsubscribe links (``unsubscribe``). References are checked
in ``references``; ``apply`` stores each event once under its dedup key, suppresses the
address where the signal says so and evaluates the breaker.
"""
