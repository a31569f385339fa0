"""The ``postgate`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sqlalchemy import func, select

from postgate import tables as t
from postgate.settings import Settings, get_settings


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.demo.run import run_demo

    report = run_demo(Path(args.dir) if args.dir else None)
    return 0 if report["sent"] else 1


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.db import migrate

    migrate(settings.database_url)
    print("database is at the latest schema")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.workers.main import serve

    serve(settings, args.names)
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run("postgate.api:create_app", factory=True, host=args.host, port=args.port,
                log_level="info")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.workers.broker import Broker

    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    broker = Broker(settings.broker_url, settings.queue_prefix)
    broker.publish("campaigns", body)
    broker.close()
    print(f"published {len(body)} bytes to {settings.queue_prefix}.campaigns")
    return 0


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.db import engine_for

    dl = t.dead_letter.c
    with engine_for(settings.database_url).connect() as conn:
        rows = conn.execute(
            select(dl.id, dl.created_at, dl.queue, dl.error, dl.body_bytes, dl.body)
            .order_by(dl.id.desc()).limit(args.limit)
        ).all()
    for row in rows:
        print(json.dumps({"id": row.id, "at": row.created_at.isoformat(), "queue": row.queue,
                          "error": row.error, "bytes": row.body_bytes,
                          "body": row.body[:200]}, ensure_ascii=False))
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.db import engine_for

    d, c = t.delivery.c, t.campaign.c
    with engine_for(settings.database_url).connect() as conn:
        campaign = conn.execute(
            select(c.id, c.external_id, c.state).where(c.id == args.id)
        ).first()
        if campaign is None:
            print(f"no campaign {args.id}", file=sys.stderr)
            return 1
        counts = conn.execute(
            select(d.state, d.reason, func.count()).where(d.campaign_id == args.id)
            .group_by(d.state, d.reason)
        ).all()
    print(json.dumps({
        "campaign": campaign.id, "external_id": campaign.external_id, "state": campaign.state,
        "deliveries": [{"state": s, "reason": r, "count": n} for s, r, n in counts],
    }))
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.auth import create_key
    from postgate.db import engine_for

    role = "operator" if args.operator else "tenant"
    key = create_key(engine_for(settings.database_url), role, args.name, args.tenant)
    print(key)
    return 0


def _domains(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.clock import utcnow
    from postgate.db import engine_for
    from postgate.delivery import domain_store

    engine = engine_for(settings.database_url)
    with engine.connect() as conn:
        tenant_id = conn.scalar(select(t.tenant.c.id).where(t.tenant.c.slug == args.tenant))
    if tenant_id is None:
        print(f"unknown tenant {args.tenant!r}", file=sys.stderr)
        return 1
    try:
        if args.action == "add":
            rows = [domain_store.add(engine, tenant_id, args.domain, settings.dkim_algorithm,
                                     utcnow())]
        elif args.action == "verify":
            rows = [domain_store.verify(engine, settings, tenant_id, args.domain, utcnow())[0]]
        else:
            rows = domain_store.listing(engine, tenant_id)
    except (ValueError, LookupError, RuntimeError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(domain_store.describe(row), ensure_ascii=False))
    return 0 if args.action != "verify" or rows[0].verified_at else 2


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.delivery.message import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="postgate", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    demo.add_argument("--dir", help="keep the demo database in this folder")
    demo.set_defaults(fn=_demo)
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(fn=_db)
    worker = sub.add_parser("worker", help="run workers until SIGTERM")
    worker.add_argument("names", nargs="+", choices=["planner", "sender", "sweeper"])
    worker.set_defaults(fn=_worker)
    api = sub.add_parser("api", help="serve the HTTP api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(fn=_api)
    pub = sub.add_parser("publish", help="publish a campaign.v1 JSON file (- for stdin)")
    pub.add_argument("file")
    pub.set_defaults(fn=_publish)
    dead = sub.add_parser("dead-letters", help="list dead-lettered queue messages")
    dead.add_argument("--limit", type=int, default=50)
    dead.set_defaults(fn=_dead_letters)
    camp = sub.add_parser("campaign", help="campaign commands")
    camp_sub = camp.add_subparsers(dest="action", required=True)
    status = camp_sub.add_parser("status", help="deliveries of a campaign by state")
    status.add_argument("id", type=int)
    status.set_defaults(fn=_status)
    keys = sub.add_parser("keys", help="api keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="a key for this tenant's own data")
    who.add_argument("--operator", action="store_true", help="a platform operator's key")
    create.add_argument("--name", default="default")
    create.set_defaults(fn=_keys)
    domains = sub.add_parser("domains", help="a tenant's sender domains (DNS TXT verified)")
    domains.add_argument("action", choices=["add", "verify", "list"])
    domains.add_argument("domain", nargs="?", default="")
    domains.add_argument("--tenant", required=True)
    domains.set_defaults(fn=_domains)
    schema = sub.add_parser("schema", help="print the campaign.v1 JSON schema")
    schema.set_defaults(fn=_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "worker" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return int(args.fn(args, get_settings()))
