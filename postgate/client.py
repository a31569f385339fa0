"""A small client for the CRM side: publish campaigns, sync contacts, read results.

Over the api with a tenant key (``Client``), or straight onto the queues with kombu
(``QueueClient``)::

    from postgate.client import Client

    with Client("https://postgate.example", "pg_...") as pg:
        pg.upsert_contacts("acme", [{"external_id": "crm-1", "email": "anna@example.com",
                                     "lists": [1], "consents": [...]}])
        pg.publish_campaign({...campaign.v1...})
        print(pg.campaign_results("spring-sale-2026"))

Consuming events (``event.v1``) will get its own method here once the event outbox
exists; until then results are read with :meth:`Client.campaign_results` and
:meth:`Client.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable
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
