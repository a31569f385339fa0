"""The ``postgate`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, make_url, select
from sqlalchemy.exc import DBAPIError

from postgate.cli import consent as consent_commands
from postgate.cli import platform as platform_commands
from postgate.providers.shaping_file import ShapingError
from postgate.settings import MissingSecret, Settings, get_settings, new_secret
from postgate.store import tables as t
from postgate.store.db import normalise_url
from postgate.tenants import slugs as tenants


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.demo.run import run_demo

    report = run_demo(Path(args.dir) if args.dir else None)
    return 0 if report["sent"] else 1


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.store.db import migrate

    migrate(settings.database_url)
    print("database is at the latest schema")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.workers.main import serve

    serve(settings, args.names)
    return 0


def proxy_options(settings: Settings) -> tuple[bool, str]:
    """uvicorn's ``proxy_headers`` and ``forwarded_allow_ips``: X-Forwarded-For/-Proto are
    believed only from the proxies FORWARDED_ALLOW_IPS names, and with none named they are
    not read at all (uvicorn's own default trusts 127.0.0.1, so a same-host proxy would
    pass on whatever address a client wrote there)."""
    allowed = settings.forwarded_allow_ips.strip()
    return bool(allowed), allowed


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    settings.require_secret()
    proxy_headers, allowed = proxy_options(settings)
    uvicorn.run(
        "postgate.http.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=allowed,
    )
    return 0


def _secret(args: argparse.Namespace, settings: Settings) -> int:
    key = new_secret()
    if not args.write:
        print(key)
        return 0
    try:
        fd = os.open(args.write, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"{args.write} exists; not overwriting a secret key", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot create {args.write}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(key + "\n")
    print(f"wrote a new secret key to {args.write} (mode 0600); set SECRET_KEY_FILE={args.write}")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.runtime.broker import Broker

    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    queue = "contacts" if b'"contacts.v1"' in body[:4096] else "campaigns"
    broker = Broker(settings.broker_url, settings.queue_prefix)
    broker.publish(queue, body)
    broker.close()
    if queue == "contacts":
        from postgate.cli.platform import published_contacts

        return published_contacts(body, settings)
    try:  # say what to follow; the planner validates (a bad message is dead-lettered)
        message = json.loads(body)
        tenant, campaign = str(message["tenant"]), str(message["campaign_id"])
    except (ValueError, TypeError, KeyError):
        print(
            f"published {len(body)} bytes to {settings.queue_prefix}.campaigns (not a "
            "campaign.v1 object: the planner will dead-letter it; see 'postgate "
            "dead-letters')"
        )
        return 0
    print(
        f"published campaign {campaign!r} of tenant {tenant!r} ({len(body)} bytes) to "
        f"{settings.queue_prefix}.campaigns; follow it with: postgate campaign status "
        f"{campaign} --tenant {tenant} --follow"
    )
    return 0


def _dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.runtime.dead_letters import shown
    from postgate.store.db import engine_for

    dl = t.dead_letter.c
    with engine_for(settings.database_url).connect() as conn:
        rows = conn.execute(
            select(dl.id, dl.created_at, dl.queue, dl.error, dl.body_bytes, dl.body)
            .order_by(dl.id.desc())
            .limit(args.limit)
        ).all()
    for row in rows:
        # a body that was not clean UTF-8 is stored as base64: shown escaped, and said so
        encoding, body = shown(row.body)
        print(
            json.dumps(
                {
                    "id": row.id,
                    "at": row.created_at.isoformat(),
                    "queue": row.queue,
                    "error": row.error,
                    "bytes": row.body_bytes,
                    "encoding": encoding,
                    "body": body,
                },
                ensure_ascii=False,
            )
        )
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.store.db import engine_for

    d, c = t.delivery.c, t.campaign.c
    engine = engine_for(settings.database_url)
    with engine.connect() as conn:
        if args.tenant:  # the tenant's own campaign id
            tenant_id = tenants.id_of(conn, args.tenant)
            if tenant_id is None:
                raise ValueError(f"unknown tenant {args.tenant!r}")
            where = (c.tenant_id == tenant_id) & (c.external_id == args.id)
        elif args.id.isascii() and args.id.isdigit():
            where = c.id == int(args.id)
        else:
            raise ValueError(
                f"{args.id!r} is not an internal campaign id: give the tenant "
                "too for its own id (--tenant SLUG)"
            )
        campaign = conn.execute(select(c.id, c.external_id, c.state).where(where)).first()
        if campaign is None:
            print(
                f"no campaign {args.id}" + (f" of tenant {args.tenant!r}" if args.tenant else ""),
                file=sys.stdout if args.follow else sys.stderr,
            )  # as the live bar says it
            return 1
        if args.follow:
            from postgate.progress_bar import follow

            return follow(engine, campaign.id, args.interval)
        counts = conn.execute(
            select(d.state, d.reason, func.count())
            .where(d.campaign_id == campaign.id)
            .group_by(d.state, d.reason)
        ).all()
    print(
        json.dumps(
            {
                "campaign": campaign.id,
                "external_id": campaign.external_id,
                "state": campaign.state,
                "deliveries": [{"state": s, "reason": r, "count": n} for s, r, n in counts],
            }
        )
    )
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.http.auth import create_key
    from postgate.store.db import engine_for

    role = "operator" if args.operator else "tenant"
    key = create_key(engine_for(settings.database_url), role, args.name, args.tenant)
    print(key)
    return 0


def _tenant_of(engine: Engine, slug: str) -> int:
    with engine.connect() as conn:
        tenant_id = tenants.id_of(conn, slug)
    if tenant_id is None:
        raise SystemExit(f"unknown tenant {slug!r}")
    return int(tenant_id)


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.store.db import engine_for
    from postgate.tenants.erasure import erase

    engine = engine_for(settings.database_url)
    report = erase(engine, _tenant_of(engine, args.tenant), args.address, actor="cli")
    print(json.dumps(dataclasses.asdict(report)))
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.store.db import engine_for
    from postgate.tenants.export import export_tenant

    engine = engine_for(settings.database_url)
    tenant_id = _tenant_of(engine, args.tenant)
    if args.out == "-":
        export_tenant(engine, tenant_id, sys.stdout.buffer)
    else:
        with open(args.out, "wb") as out:
            export_tenant(engine, tenant_id, out)
    return 0


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.core.clock import utcnow
    from postgate.store.db import engine_for
    from postgate.workers.retention import purge

    print(json.dumps(purge(engine_for(settings.database_url), utcnow())))
    return 0


def _close(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import update

    from postgate.core.clock import utcnow
    from postgate.core.states import BlockSource, Scope
    from postgate.store.db import engine_for
    from postgate.tenants import sending

    engine = engine_for(settings.database_url)
    tenant_id = _tenant_of(engine, args.tenant)
    now = utcnow()
    with engine.begin() as conn:  # a closed tenant sends nothing: a block on everything
        sending.add_block(
            conn, tenant_id, Scope.ALL, BlockSource.OPERATOR, "tenant closed", "cli", {}, now
        )
        conn.execute(update(t.tenant).where(t.tenant.c.id == tenant_id).values(closed_at=now))
    print(f"tenant {args.tenant} closed; its data is purged after 90 days")
    return 0


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.feedback.bounces.classify import run

    run(args.files, settings.keys, sys.stdout, args.jobs)
    return 0


def _domains(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.core.clock import utcnow
    from postgate.store.db import engine_for
    from postgate.tenants import domains as domain_store

    engine = engine_for(settings.database_url)
    tenant_id = _tenant_of(engine, args.tenant)
    extra: dict[str, object] = {}
    try:
        if args.action == "add":
            rows = [
                domain_store.add(
                    engine,
                    tenant_id,
                    args.domain,
                    settings.dkim_algorithm,
                    utcnow(),
                    dual=settings.dkim_dual,
                )
            ]
        elif args.action == "verify":
            rows = [domain_store.verify(engine, settings, tenant_id, args.domain, utcnow())[0]]
            if rows[0].verified_at is not None:  # a newly usable domain is judged at once
                extra["preflight"] = _preflight(engine, settings, tenant_id, args)
        elif args.action == "warmup":
            return _warmup(engine, settings, tenant_id, args)
        elif args.action == "preflight":
            result = _preflight(engine, settings, tenant_id, args)
            print(json.dumps(result, ensure_ascii=False))
            return 0 if result["passed"] else 2
        else:
            rows = domain_store.listing(engine, tenant_id)
    except (ValueError, LookupError, RuntimeError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(domain_store.describe(row) | extra, ensure_ascii=False))
    return 0 if args.action != "verify" or rows[0].verified_at else 2


def _warmup(engine: Engine, settings: Settings, tenant_id: int, args: argparse.Namespace) -> int:
    """Show a domain's warm-up; with --stage or --done, change it first (audited)."""
    from postgate.core.clock import utcnow
    from postgate.tenants import warmup

    if args.stage is not None or args.done:
        if args.stage is not None and args.stage < 0:
            raise ValueError("--stage is 0 or more")
        stage = None if args.done else args.stage
        warmup.set_stage(engine, tenant_id, args.domain, stage, "cli", utcnow())
    with engine.connect() as conn:
        shown = warmup.status(conn, settings, tenant_id, args.domain, utcnow())
    print(json.dumps(shown, ensure_ascii=False))
    return 0


def _preflight(
    engine: Engine, settings: Settings, tenant_id: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Run a domain's authentication preflight and store it; print on stderr each failing
    check and each record still to publish."""
    from postgate.core.clock import utcnow
    from postgate.tenants import preflight

    result = preflight.run(engine, settings, tenant_id, args.domain, utcnow(), args.tenant)
    for name, check in result["checks"].items():
        if not check["passed"]:
            print(f"{name}: {check['reason']}", file=sys.stderr)
    for record in result["records"]:
        if not record["published"]:
            need = "publish" if record["required"] else "optional"
            print(f'{need}: {record["name"]} TXT "{record["value"]}"', file=sys.stderr)
    return result


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform.schemas import schema

    print(json.dumps(schema(args.name), indent=2))
    return 0


def _sms_inspect(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.core.sms.encoding import Policy, SmsTooLong, encode

    try:
        sms = encode(args.text, Policy(args.policy), args.max_parts)
    except SmsTooLong as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = sms.summary()
    if args.price_per_part is not None:
        summary["cost"] = round(sms.segments * args.price_per_part, 6)
    print(json.dumps(summary, ensure_ascii=False))
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
    worker.add_argument(
        "names",
        nargs="+",
        choices=["planner", "sender", "sweeper", "feedback", "retention", "contacts", "events"],
        help="workers to run in this process (contacts: applies contacts.v1 messages; "
        "events: publishes event.v1 to the event exchange and posts it to webhook endpoints)",
    )
    worker.set_defaults(fn=_worker)
    api = sub.add_parser("api", help="serve the HTTP api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(fn=_api)
    pub = sub.add_parser(
        "publish", help="publish a campaign.v1 or contacts.v1 JSON file (- for stdin) to its queue"
    )
    pub.add_argument("file")
    pub.set_defaults(fn=_publish)
    dead = sub.add_parser("dead-letters", help="list dead-lettered queue messages")
    dead.add_argument("--limit", type=int, default=50)
    dead.set_defaults(fn=_dead_letters)
    camp = sub.add_parser("campaign", help="campaign commands")
    camp_sub = camp.add_subparsers(dest="action", required=True)
    status = camp_sub.add_parser("status", help="deliveries of a campaign by state")
    status.add_argument(
        "id", help="the internal campaign id, or with --tenant the tenant's own campaign_id"
    )
    status.add_argument("--tenant", help="the tenant's slug: ID is then its own campaign_id")
    status.add_argument(
        "--follow",
        action="store_true",
        help="show a live progress bar until the campaign is finished",
    )
    status.add_argument("--interval", type=float, default=0.5, help="seconds between reads")
    status.set_defaults(fn=_status)
    consent_commands.add_commands(sub, camp_sub)
    platform_commands.add_commands(sub)
    keys = sub.add_parser("keys", help="api keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="a key for this tenant's own data")
    who.add_argument("--operator", action="store_true", help="a platform operator's key")
    create.add_argument("--name", default="default")
    create.set_defaults(fn=_keys)
    erase = sub.add_parser("erase", help="erase a person's data for a tenant (GDPR)")
    erase.add_argument("--tenant", required=True)
    erase.add_argument("address", help="email address or E.164 phone number")
    erase.set_defaults(fn=_erase)
    export = sub.add_parser("export", help="export a tenant's data as XML")
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", default="-", help="file to write (- for stdout)")
    export.set_defaults(fn=_export)
    retention = sub.add_parser("retention", help="purge data past its retention period now")
    retention.set_defaults(fn=_retention)
    tenant = sub.add_parser("tenant", help="tenant lifecycle")
    tenant_sub = tenant.add_subparsers(dest="action", required=True)
    close = tenant_sub.add_parser("close", help="close a tenant: stop sending, purge in 90 days")
    close.add_argument("tenant")
    close.set_defaults(fn=_close)
    feedback = sub.add_parser("feedback", help="feedback mail (bounces, complaints)")
    feedback_sub = feedback.add_subparsers(dest="action", required=True)
    classify = feedback_sub.add_parser(
        "classify", help="print one JSON line per mail: kind, reason, hard, recipients, status"
    )
    classify.add_argument(
        "files", nargs="+", help="mail files, directories of them, maildirs or mbox files"
    )
    classify.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="worker processes for large sets (default: CPUs, at most 4)",
    )
    classify.set_defaults(fn=_classify)
    sms = sub.add_parser("sms", help="SMS commands")
    sms_sub = sms.add_subparsers(dest="action", required=True)
    inspect = sms_sub.add_parser("inspect", help="encoding and parts of an SMS text (JSON)")
    inspect.add_argument("text")
    inspect.add_argument("--policy", choices=["unicode", "transliterate"], default="unicode")
    inspect.add_argument("--max-parts", type=int, default=None)
    inspect.add_argument(
        "--price-per-part",
        type=float,
        default=None,
        help="add the estimated cost (parts x price) to the output",
    )
    inspect.set_defaults(fn=_sms_inspect)
    domains = sub.add_parser("domains", help="a tenant's sender domains (DNS TXT verified)")
    domains.add_argument("action", choices=["add", "verify", "preflight", "warmup", "list"])
    domains.add_argument("domain", nargs="?", default="")
    domains.add_argument("--tenant", required=True)
    ramp = domains.add_mutually_exclusive_group()
    ramp.add_argument(
        "--stage", type=int, help="warmup: put the domain at this stage of WARMUP_SCHEDULE"
    )
    ramp.add_argument(
        "--done", action="store_true", help="warmup: declare the domain warm (no more caps)"
    )
    domains.set_defaults(fn=_domains)
    schema = sub.add_parser(
        "schema",
        help="print the JSON schema of a queue message",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    schema.add_argument(
        "name",
        nargs="?",
        default="campaign.v1",
        choices=["campaign.v1", "contacts.v1", "event.v1"],
        help="which message",
    )
    schema.set_defaults(fn=_schema)
    secret = sub.add_parser("secret", help="the SECRET_KEY")
    secret_sub = secret.add_subparsers(dest="action", required=True)
    secret_new = secret_sub.add_parser("new", help="print a fresh random key")
    secret_new.add_argument(
        "--write",
        metavar="PATH",
        help="write it to a new file (mode 0600) for SECRET_KEY_FILE "
        "instead; an existing file is never overwritten",
    )
    secret_new.set_defaults(fn=_secret)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "worker" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = get_settings()
    if args.command not in NO_DATABASE_NEEDED and (missing := _missing_database(settings)):
        print(missing, file=sys.stderr)  # never create an empty SQLite file by accident
        return 2
    try:
        return int(args.fn(args, settings))
    except (MissingSecret, ShapingError) as exc:  # no key or a wrong shaping file: no start
        print(exc, file=sys.stderr)
        return 2
    except ValueError as exc:  # a mistake in what was asked (an unknown tenant, say)
        if args.command in ("worker", "api"):
            raise  # a long-running process: its traceback is worth more
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        print(_database_problem(exc, settings), file=sys.stderr)
        return 2


# commands that need no database, or make it
NO_DATABASE_NEEDED = {"db", "demo", "schema", "secret", "feedback", "sms", "publish"}


def _missing_database(settings: Settings) -> str:
    """A one-line reason when DATABASE_URL names a SQLite file that does not exist."""
    url = make_url(normalise_url(settings.database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return ""
    if Path(url.database).exists():
        return ""
    return (
        f"error: no database at {url.database!r} (DATABASE_URL): create it with "
        "'postgate db upgrade', or point DATABASE_URL at your database"
    )


def _database_problem(exc: DBAPIError, settings: Settings) -> str:
    text = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    where = make_url(normalise_url(settings.database_url)).render_as_string(hide_password=True)
    if "no such table" in text or ("does not exist" in text and "relation" in text):
        return (
            f"error: the database at {where} has no postgate schema yet ({text}): run "
            "'postgate db upgrade'"
        )
    return f"error: database problem at {where}: {text}"
