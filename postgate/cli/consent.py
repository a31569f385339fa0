"""Command-line entry points of the consent side: list import and campaign dry run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from postgate.core.clock import utcnow
from postgate.settings import Settings
from postgate.tenants import slugs as tenants


def import_list(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.consent import imports
    from postgate.store.db import engine_for

    engine = engine_for(settings.database_url)
    try:
        decl = imports.Provenance.model_validate(
            {
                k: v
                for k, v in {
                    "source": args.source,
                    "topic": args.topic,
                    "collected_at": args.collected_at,
                    "evidence": args.evidence,
                    "purchase_date": args.purchase_date,
                    "marketing_checkbox": args.marketing_checkbox,
                }.items()
                if v is not None
            }
        )
    except ValidationError as exc:
        print("import refused: " + "; ".join(e["msg"] for e in exc.errors()), file=sys.stderr)
        return 2
    with engine.connect() as conn:
        tenant_id = tenants.id_of(conn, args.tenant)
    if tenant_id is None:
        print(f"import refused: unknown tenant {args.tenant!r}", file=sys.stderr)
        return 2
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
        result = imports.run_import(engine, tenant_id, args.list, decl, text, "cli", utcnow())
    except (imports.ImportRefused, LookupError, UnicodeDecodeError, OSError) as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


def dry_run(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.consent.dry_run import dry_run as run
    from postgate.core.message import MessageError, parse_campaign
    from postgate.store.db import engine_for

    try:
        msg = parse_campaign(Path(args.file).read_bytes(), settings.max_message_bytes)
        result = run(engine_for(settings.database_url), msg, settings.page_size, utcnow(), settings)
    except (MessageError, OSError) as exc:
        print(f"dry run refused: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    campaign_sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    imp = sub.add_parser("import", help="import a CSV list with its provenance")
    imp.add_argument("--tenant", required=True)
    imp.add_argument("--list", type=int, required=True)
    imp.add_argument(
        "--source", required=True, help="signup_form | written_consent | purchase | event"
    )
    imp.add_argument("--topic", required=True)
    imp.add_argument("--collected-at", required=True, help="ISO date the consents were given")
    imp.add_argument("--evidence", required=True, help="where the proof is kept")
    imp.add_argument("--purchase-date")
    imp.add_argument("--marketing-checkbox", choices=["ticked", "unticked"])
    imp.add_argument("file")
    imp.set_defaults(fn=_import_adapter)
    dry = campaign_sub.add_parser("dry-run", help="count who a campaign.v1 file would reach")
    dry.add_argument("file")
    dry.set_defaults(fn=dry_run)


def _import_adapter(args: argparse.Namespace, settings: Settings) -> int:
    if args.marketing_checkbox is not None:
        args.marketing_checkbox = args.marketing_checkbox == "ticked"
    return import_list(args, settings)
