"""Command-line provisioning: ``postgate tenants …`` and ``postgate lists …``.

Each command prints one JSON line (the tenant or list as the api shows it); a mistake
is one ``error: …`` line on stderr and exit status 2 (``postgate.cli.main``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

from pydantic import ValidationError

from postgate.core.clock import utcnow
from postgate.settings import Settings

ACTOR = "cli"


def _engine(settings: Settings) -> Any:
    from postgate.store.db import engine_for

    return engine_for(settings.database_url)


def _print(value: Any) -> int:
    print(json.dumps(value, ensure_ascii=False))
    return 0


def _validated(model: Any, values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: "
                f"{str(e['msg']).removeprefix('Value error, ')}"
                for e in exc.errors()
            )
        ) from None


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except LookupError as exc:  # an unknown tenant or list: a mistake, one line
        raise ValueError(str(exc)) from None


def published_contacts(body: bytes, settings: Settings) -> int:
    """What ``postgate publish`` says after publishing a contacts.v1 document."""
    try:
        doc = json.loads(body)
        tenant, batch = str(doc["tenant"]), str(doc.get("batch_id") or "")
    except (ValueError, TypeError, KeyError):
        tenant, batch = "?", ""
    where = f"{settings.queue_prefix}.contacts"
    print(
        f"published contacts of tenant {tenant!r} ({len(body)} bytes) to {where}; the "
        "contacts worker applies them ('postgate worker contacts'); the report: GET "
        f"/v1/contacts/syncs{'?batch_id=' + batch if batch else ''}; a malformed "
        "document shows in 'postgate dead-letters'"
    )
    return 0


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.legal_name is not None:
        values["legal_name"] = args.legal_name
    if args.domain is not None:
        values["domain"] = args.domain
    if args.locale is not None:
        values["locale"] = args.locale
    if args.from_email is not None:
        values["default_from"] = {"email": args.from_email, "name": args.from_name or ""}
    limits = {
        k: v
        for k, v in (("max_lists", args.max_lists), ("max_contacts", args.max_contacts))
        if v is not None
    }
    if limits:
        values["limits"] = limits
    if args.sms_window is not None:  # "HU=09:00-19:00,*=08:00-20:00"; "" clears it
        windows = (part.partition("=") for part in args.sms_window.split(",") if part.strip())
        values["sms_send_window"] = {region.strip(): value for region, _, value in windows}
    return values


def tenants_create(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    spec = _validated(prov.TenantSpec, {"slug": args.slug} | _profile(args))
    out = prov.create_tenant(_engine(settings), spec, ACTOR, utcnow(), settings)
    print(
        f"next: postgate keys create --tenant {out['slug']} --name crm; "
        f"postgate lists create --tenant {out['slug']} NAME",
        file=sys.stderr,
    )
    return _print(out)


def tenants_update(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    values = _profile(args)
    if "limits" in values:  # a limit not named on the command line stays as it is
        current = _call(prov.show, _engine(settings), args.slug)["limits"]
        values["limits"] = current | values["limits"]
    if not values:
        raise ValueError("nothing to change: give at least one option (see --help)")
    patch = _validated(prov.TenantPatch, values)
    return _print(
        _call(prov.update_tenant, _engine(settings), args.slug, patch, ACTOR, utcnow(), settings)
    )


def tenants_list(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    for row in prov.listing(_engine(settings)):
        _print(row)
    return 0


def tenants_show(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    return _print(_call(prov.show, _engine(settings), args.slug))


def tenants_suspend(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov
    from postgate.runtime.announce import announce

    out = _call(prov.suspend, _engine(settings), args.slug, args.reason, ACTOR, utcnow())
    announce(settings, out["id"])
    return _print(out)


def tenants_reinstate(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.http.kill_switch import resume_held
    from postgate.platform import provisioning as prov
    from postgate.runtime.announce import announce

    engine = _engine(settings)
    out = _call(prov.reinstate, engine, args.slug, args.reason, ACTOR, utcnow())
    announce(settings, out["id"])
    return _print(out | {"resumed": resume_held(engine, settings, out["id"])})


def tenants_close(args: argparse.Namespace, settings: Settings) -> int:
    """Export first (to a new file), then close; the retention job erases the data later."""
    from postgate.platform import provisioning as prov
    from postgate.runtime.announce import announce
    from postgate.tenants.export import export_tenant

    engine = _engine(settings)
    tenant = _call(prov.show, engine, args.slug)
    if tenant["closed_at"]:
        raise ValueError(f"tenant {args.slug!r} is closed already")
    try:
        fd = os.open(args.export, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValueError(f"{args.export} exists; not overwriting it") from None
    except OSError as exc:
        raise ValueError(f"cannot create {args.export}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        export_tenant(engine, tenant["id"], out)
    data = open(args.export, "rb").read()  # noqa: SIM115
    export = {
        "file": os.path.abspath(args.export),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    closed = prov.close(engine, args.slug, args.reason, ACTOR, utcnow(), export)
    announce(settings, closed["id"])
    return _print(closed | {"export": export})


def lists_list(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    engine = _engine(settings)
    with engine.connect() as conn:
        tenant_id = _call(prov.tenant_id_of, conn, args.tenant)
    for row in prov.lists(engine, tenant_id):
        _print(row)
    return 0


def _list_call(args: argparse.Namespace, settings: Settings, fn: Any, *rest: Any) -> int:
    from postgate.platform import provisioning as prov

    engine = _engine(settings)
    with engine.connect() as conn:
        tenant_id = _call(prov.tenant_id_of, conn, args.tenant)
    return _print(_call(fn, engine, tenant_id, *rest, ACTOR, utcnow()))


def lists_create(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    name = _validated(_list_name(), {"name": args.name}).name
    return _list_call(args, settings, prov.create_list, name)


def lists_rename(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    name = _validated(_list_name(), {"name": args.name}).name
    return _list_call(args, settings, prov.rename_list, args.list_id, name)


def lists_delete(args: argparse.Namespace, settings: Settings) -> int:
    from postgate.platform import provisioning as prov

    return _list_call(args, settings, prov.delete_list, args.list_id)


def _list_name() -> Any:  # the api's model, imported when used
    from postgate.http.tenants import ListName

    return ListName


def sources(args: argparse.Namespace, settings: Settings) -> int:
    """The source addresses (MX_SOURCES) and their warm-up; with --stage or --done on one
    address, change it first (audited)."""
    from postgate.core.clock import utcnow
    from postgate.platform import source_warmup

    engine = _engine(settings)
    if args.stage is not None or args.done:
        if not args.address:
            raise ValueError("--stage and --done need the address")
        if args.stage is not None and args.stage < 0:
            raise ValueError("--stage is 0 or more")
        stage = None if args.done else args.stage
        _call(source_warmup.set_stage, engine, args.address, stage, ACTOR, utcnow())
    with engine.connect() as conn:
        shown = source_warmup.status(conn, settings, utcnow())
    for row in shown:
        if not args.address or row["address"] == args.address:
            _print(row)
    return 0


def _profile_options(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--legal-name", required=creating, help="the company's legal name")
    p.add_argument(
        "--domain",
        required=creating,
        help="primary sending domain (counts as verified; others are added with "
        "'postgate domains add')",
    )
    p.add_argument(
        "--locale",
        default="en" if creating else None,
        help="language tag such as hu-HU" + (" (default: %(default)s)" if creating else ""),
    )
    p.add_argument("--from-email", help="default From address, within the domain")
    p.add_argument("--from-name", help="display name of the default From")
    p.add_argument(
        "--max-lists",
        type=int,
        help="most lists the tenant may have (default: no limit)"
        if creating
        else "most lists the tenant may have",
    )
    p.add_argument(
        "--max-contacts",
        type=int,
        help="most contacts a contact sync may bring it to (default: no limit)"
        if creating
        else "most contacts a contact sync may bring it to",
    )
    p.add_argument(
        "--sms-window",
        help="promotional SMS send windows in the recipient's local time, e.g. "
        "'HU=09:00-19:00,*=08:00-20:00' (default: the platform's SMS_SEND_WINDOW)",
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    tenants = sub.add_parser(
        "tenants", help="provision tenants (create, update, suspend, reinstate, close, list, show)"
    )
    ts = tenants.add_subparsers(dest="action", required=True)
    create = ts.add_parser("create", help="create a tenant and print it", formatter_class=fmt)
    create.add_argument("slug", help="the name queue messages, keys and paths use (a-z, 0-9, -)")
    _profile_options(create, creating=True)
    create.set_defaults(fn=tenants_create)
    upd = ts.add_parser("update", help="change a tenant; options left out stay as they are")
    upd.add_argument("slug", help="the tenant's slug")
    _profile_options(upd, creating=False)
    upd.set_defaults(fn=tenants_update)
    for name, fn, text in (
        (
            "suspend",
            tenants_suspend,
            "stop bulk email and bulk SMS (transactional mail still goes out)",
        ),
        ("reinstate", tenants_reinstate, "clear the bulk blocks; held deliveries are sent"),
    ):
        cmd = ts.add_parser(name, help=text)
        cmd.add_argument("slug", help="the tenant's slug")
        cmd.add_argument("--reason", required=True, help="why (kept in the audit log)")
        cmd.set_defaults(fn=fn)
    close = ts.add_parser(
        "close",
        help="export the tenant's data, then close it: nothing is "
        "sent any more, its keys are revoked, its data is "
        "erased 90 days later",
    )
    close.add_argument("slug", help="the tenant's slug")
    close.add_argument("--reason", required=True, help="why (kept in the audit log)")
    close.add_argument(
        "--export",
        required=True,
        metavar="FILE",
        help="write the XML export here first (a new file; never overwritten)",
    )
    close.set_defaults(fn=tenants_close)
    listing = ts.add_parser("list", help="one JSON line per tenant")
    listing.set_defaults(fn=tenants_list)
    show = ts.add_parser("show", help="one tenant as JSON")
    show.add_argument("slug", help="the tenant's slug")
    show.set_defaults(fn=tenants_show)

    src = sub.add_parser(
        "sources", help="the source addresses of direct-to-MX (MX_SOURCES) and their warm-up"
    )
    src.add_argument("address", nargs="?", default="", help="one address (default: all)")
    ramp = src.add_mutually_exclusive_group()
    ramp.add_argument("--stage", type=int, help="put the address at this stage of WARMUP_SCHEDULE")
    ramp.add_argument("--done", action="store_true", help="declare the address warm (no caps)")
    src.set_defaults(fn=sources)

    lists = sub.add_parser("lists", help="a tenant's mailing lists (create, rename, delete, list)")
    ls = lists.add_subparsers(dest="action", required=True)
    lc = ls.add_parser("create", help="create a list and print it with its id")
    lc.add_argument("name", help="the list's name")
    lr = ls.add_parser("rename", help="rename a list")
    lr.add_argument("list_id", type=int, help="the list's id")
    lr.add_argument("name", help="the new name")
    ld = ls.add_parser(
        "delete",
        help="delete a list and its memberships (contacts and "
        "consents stay); refused while a form or an unfinished "
        "campaign uses it",
    )
    ld.add_argument("list_id", type=int, help="the list's id")
    ll = ls.add_parser("list", help="one JSON line per list, with its member count")
    for cmd, fn in ((lc, lists_create), (lr, lists_rename), (ld, lists_delete), (ll, lists_list)):
        cmd.add_argument("--tenant", required=True, help="the tenant's slug")
        cmd.set_defaults(fn=fn)
