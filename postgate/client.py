"""A small client for the CRM side: publish campaigns, sync contacts, read results.

Over the api with a tenant key (``Client``), or straight onto the queues with kombu
(``QueueClient``)::

    from postgate.client import Client

    with Client("https://postgate.example", "pg_...") as pg:
        pg.upsert_contacts("acme", [{"external_id": "crm-1", "email": "anna@example.com",
                                     "lists": [1], "consents": [...]}])
        pg.publish_campaign({...campaign.v1...})
        print(pg.campaign_results("spring-sale-2026"))

Events (``event.v1``) come three ways: :meth:`Client.events` reads the tenant's stream
from a cursor, :meth:`QueueClient.consume_events` takes them from a queue bound to the
event exchange, and a webhook endpoint (:meth:`Client.create_endpoint`) receives them
posted and signed — check each post with :func:`verify_signature`::

    for event in pg.events(after=last_seq):
        handle(event)                  # at least once: skip an event["id"] seen before
        last_seq = event["seq"]
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx


class ApiError(RuntimeError):
    """The api refused a request; ``status`` and ``detail`` say how and why."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    def __init__(self, base_url: str, key: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        return response.json()

    def me(self) -> dict[str, Any]:
        """The key's tenant, its profile and its sending state (with the reasons)."""
        return dict(self._call("GET", "/v1/me"))

    def publish_campaign(self, message: dict[str, Any]) -> dict[str, Any]:
        """Queue a campaign.v1 message (validated first; the same id twice is one campaign)."""
        return dict(self._call("POST", "/v1/campaigns", json=message))

    def upsert_contacts(
        self, tenant: str, contacts: Iterable[dict[str, Any]], batch_id: str = ""
    ) -> dict[str, Any]:
        """Sync contacts (at most 1000 per call) by their CRM id; returns the report."""
        doc = {"version": "contacts.v1", "tenant": tenant, "contacts": list(contacts)}
        if batch_id:
            doc["batch_id"] = batch_id
        return dict(self._call("POST", "/v1/contacts:bulk", json=doc))

    def lists(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/lists"))

    def create_list(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/lists", json={"name": name}))

    def campaign_results(self, campaign_id: str) -> dict[str, Any]:
        """Results of a campaign by the campaign_id of its campaign.v1 message."""
        return dict(self._call("GET", f"/v1/campaigns/by-ref/{quote(campaign_id, safe='')}"))

    def stats(self, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
        params = {k: v.isoformat() for k, v in (("from", start), ("to", end)) if v is not None}
        return dict(self._call("GET", "/v1/stats", params=params))

    def suppressions(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/suppressions")["suppressions"])

    def events(
        self, after: int = 0, types: Iterable[str] = (), page: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every event of the tenant after seq ``after``, oldest first, page by page."""
        while True:
            params: dict[str, Any] = {"after": after, "limit": page}
            if types:
                params["type"] = list(types)
            body = self._call("GET", "/v1/events", params=params)
            yield from body["events"]
            if not body["events"]:
                return
            after = int(body["next"])

    def create_endpoint(
        self, url: str, types: Iterable[str] = (), description: str = ""
    ) -> dict[str, Any]:
        """Register a webhook endpoint; the answer holds its signing ``secret``."""
        body = {"url": url, "types": list(types), "description": description}
        return dict(self._call("POST", "/v1/event-endpoints", json=body))

    def endpoints(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/event-endpoints"))

    def resume_endpoint(self, endpoint_id: int) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/event-endpoints/{endpoint_id}/resume"))


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, max_skew_s: float = 300
) -> bool:
    """Whether a webhook post is postgate's: ``X-Postgate-Signature`` is
    ``sha256=<hex HMAC-SHA256 of "<X-Postgate-Timestamp>.<body>">`` with the endpoint's
    secret, and the timestamp is within ``max_skew_s`` of now (a replay is refused)."""
    if (
        not (timestamp.isascii() and timestamp.isdigit())
        or abs(time.time() - int(timestamp)) > max_skew_s
    ):
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(f"sha256={mac.hexdigest()}", signature)


class QueueClient:
    """Publish straight to postgate's queues (``BROKER_URL``, ``QUEUE_PREFIX``)."""

    def __init__(self, broker_url: str, prefix: str = "postgate") -> None:
        from postgate.runtime.broker import Broker

        self.broker = Broker(broker_url, prefix)

    def __enter__(self) -> QueueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.broker.close()

    def publish_campaign(self, message: dict[str, Any]) -> None:
        self.broker.publish("campaigns", message)

    def upsert_contacts(
        self, tenant: str, contacts: Iterable[dict[str, Any]], batch_id: str = ""
    ) -> None:
        doc: dict[str, Any] = {
            "version": "contacts.v1",
            "tenant": tenant,
            "contacts": list(contacts),
        }
        if batch_id:
            doc["batch_id"] = batch_id
        self.broker.publish("contacts", doc)

    def consume_events(
        self, queue: str, binding: str, limit: int | None = None, wait_s: float = 1.0
    ) -> Iterator[dict[str, Any]]:
        """Events from a durable queue of the caller's, bound to the event exchange with
        ``binding`` (``acme.#``, ``*.feedback.complaint``); each is acknowledged once the
        caller asks for the next. Stops after ``limit`` events or ``wait_s`` without one."""
        yield from self.broker.consume_events(queue, binding, limit, wait_s)
