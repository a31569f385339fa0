"""The same provisioning from the command line: a tenant created from nothing, its list,
its key, a campaign sent to contacts synced over the api, and closure with the export."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

import dkim

from postgate.client import Client
from postgate.core.clock import utcnow
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smtp import SmtpSink
from tests.dns_server import LocalDns
from tests.support import publish_domain, run_until
from tests.test_cli_errors import one_line, postgate


def test_tenant_lists_and_closure_from_the_command_line(
    tmp_path: Path, settings: Settings, ctx: Context, api: str, suite_dns: LocalDns, sink: SmtpSink
) -> None:
    env = {"DATABASE_URL": settings.database_url}
    slug = f"cli-{uuid.uuid4().hex[:6]}"

    def ok(*args: str) -> dict[str, object]:
        result = postgate(tmp_path, *args, **env)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout.splitlines()[-1]))

    made = postgate(
        tmp_path,
        "tenants",
        "create",
        slug,
        "--legal-name",
        "Cli Kft.",
        "--domain",
        f"{slug}.example",
        "--from-email",
        f"news@{slug}.example",
        "--max-lists",
        "3",
        **env,
    )
    assert made.returncode == 0, made.stderr
    assert f"postgate keys create --tenant {slug}" in made.stderr
    created = json.loads(made.stdout)
    assert created["default_from"]["email"] == f"news@{slug}.example"
    assert created["sender_domain"]["verified"] is True  # vouched for by the operator
    publish_domain(suite_dns, created)  # what the tenant is told to publish
    line = one_line(
        postgate(
            tmp_path, "tenants", "create", slug, "--legal-name", "x", "--domain", "x.example", **env
        )
    )
    assert line == f"error: tenant {slug!r} exists already"
    assert (
        one_line(postgate(tmp_path, "lists", "create", "x", "--tenant", "nobody", **env))
        == "error: no tenant 'nobody'"
    )
    main = ok("lists", "create", "main", "--tenant", slug)
    assert (
        ok("lists", "rename", str(main["id"]), "newsletter", "--tenant", slug)["name"]
        == "newsletter"
    )
    updated = ok("tenants", "update", slug, "--locale", "hu-HU", "--max-contacts", "10")
    assert updated["limits"] == {"max_lists": 3, "max_contacts": 10}
    assert "nothing to change" in one_line(postgate(tmp_path, "tenants", "update", slug, **env))
    key = postgate(tmp_path, "keys", "create", "--tenant", slug, **env).stdout.strip()

    with Client(api, key) as crm:
        synced = crm.upsert_contacts(
            slug,
            [
                {
                    "external_id": "p-1",
                    "email": f"piroska@{slug}.example",
                    "lists": [main["id"]],
                    "consents": [
                        {
                            "channel": "email",
                            "topic": "news",
                            "source": "event",
                            "consented_at": (utcnow() - timedelta(days=3)).isoformat(),
                            "evidence": "fair stand sign-up sheet",
                        }
                    ],
                }
            ],
        )
        assert synced["created"] == 1
        crm.publish_campaign(
            {
                "version": "campaign.v1",
                "tenant": slug,
                "campaign_id": "from-cli",
                "channel": "email",
                "kind": "promotional",
                "topic": "news",
                "audience": [main["id"]],
                "from": {"email": f"news@{slug}.example"},
                "content": {"subject": "Hi", "text": "Hello"},
            }
        )
    asyncio.run(
        run_until(
            ctx,
            ["planner", "sender", "sweeper"],
            lambda: (
                json.loads(
                    postgate(
                        tmp_path, "campaign", "status", "from-cli", "--tenant", slug, **env
                    ).stdout
                    or "{}"
                ).get("state")
                == "finished"
            ),
            60,
        )
    )
    status = ok("campaign", "status", "from-cli", "--tenant", slug)
    assert status["deliveries"] == [{"state": "sent", "reason": None, "count": 1}]
    (mail,) = [m for m in sink.handler.received if f"piroska@{slug}.example" in m.recipients]
    assert f"d={slug}.example".encode() in mail.data  # signed by its primary domain's key
    assert dkim.verify(mail.data, dnsfunc=suite_dns.dkim_dnsfunc)

    assert ok("tenants", "suspend", slug, "--reason", "checking")["status"] == "suspended"
    assert ok("tenants", "reinstate", slug, "--reason", "checked")["status"] == "active"
    assert [
        x["name"]
        for x in map(
            json.loads,
            postgate(tmp_path, "lists", "list", "--tenant", slug, **env).stdout.splitlines(),
        )
    ] == ["newsletter"]
    export = tmp_path / "export.xml"
    closed = ok("tenants", "close", slug, "--reason", "contract ended", "--export", str(export))
    assert closed["status"] == "killed" and closed["export"]["bytes"] == export.stat().st_size
    assert f"piroska@{slug}.example" in export.read_text(encoding="utf-8")
    assert "closed already" in one_line(
        postgate(
            tmp_path,
            "tenants",
            "close",
            slug,
            "--reason",
            "again",
            "--export",
            str(tmp_path / "2.xml"),
            **env,
        )
    )
    assert not (tmp_path / "2.xml").exists()
    shown = ok("tenants", "show", slug)
    assert shown["closed_at"] and shown["purge_after"]


def test_every_provisioning_option_has_help(tmp_path: Path) -> None:
    for command in (
        ["tenants", "create"],
        ["tenants", "update"],
        ["tenants", "close"],
        ["tenants", "suspend"],
        ["lists", "create"],
        ["lists", "delete"],
    ):
        text = postgate(tmp_path, *command, "--help").stdout
        options = [
            line.split()[0]
            for line in text.splitlines()
            if line.strip().startswith("--") and not line.strip().startswith("--help")
        ]
        for option in options:
            block = text.split(option, 1)[1].split("\n  -", 1)[0]
            assert len(block.split()) > 2, (command, option, block)
    assert "(default: en)" in postgate(tmp_path, "tenants", "create", "--help").stdout
