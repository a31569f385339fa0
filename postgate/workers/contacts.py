"""The contacts worker (``postgate worker contacts``): applies ``contacts.v1`` messages
from the ``<prefix>.contacts`` queue. A malformed document, an unknown or closed tenant
is dead-lettered with the reason; what the consent rules refuse for one contact is in
the sync's report (``GET /v1/contacts/syncs?batch_id=``)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.core.contacts_message import parse_contacts
from postgate.core.message import MessageError
from postgate.platform.contacts_sync import apply
from postgate.runtime.runner import Runner
from postgate.store import tables as t

log = logging.getLogger("postgate.contacts")


class ContactsWorker(Runner):
    queue = "contacts"

    async def dispose(self, body: bytes) -> None:
        await asyncio.to_thread(self.handle, body)

    def handle(self, body: bytes) -> None:
        doc = parse_contacts(body, self.ctx.settings.max_message_bytes)
        tn = t.tenant.c
        with self.ctx.engine.connect() as conn:
            tenant = conn.execute(select(tn.id, tn.closed_at).where(tn.slug == doc.tenant)).first()
        if tenant is None:
            raise MessageError(f"unknown tenant {doc.tenant!r}")
        if tenant.closed_at is not None:
            raise MessageError(f"tenant {doc.tenant!r} is closed")
        report = apply(self.ctx.engine, tenant.id, doc, "queue", "queue", utcnow())
        log.info(
            "contacts of %s synced (batch %r): %s created, %s updated, %s unchanged, %s dropped",
            doc.tenant,
            doc.batch_id,
            report["created"],
            report["updated"],
            report["unchanged"],
            report["dropped"],
        )
