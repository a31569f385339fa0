"""List import with provenance (api and CLI), the campaign dry run and evidence export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from postgate.consent.imports import Provenance, check_rows
from postgate.core.clock import utcnow
from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.support import World


def iso(days_ago: float) -> str:
    return (utcnow() - timedelta(days=days_ago)).isoformat()


def declaration(**overrides: Any) -> dict[str, Any]:
    decl = {
        "source": "written_consent",
        "topic": "news",
        "collected_at": iso(10),
        "evidence": "paper forms, box 7",
    }
    decl.update(overrides)
    return decl


def imported(world: World) -> tuple[int, int, int]:
    with world.ctx.engine.connect() as conn:
        n = [
            conn.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == world.tenant_id)
            )
            for table in (t.contact, t.consent, t.list_import)
        ]
    return int(n[0] or 0), int(n[1] or 0), int(n[2] or 0)


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DATABASE_URL": world.ctx.settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "postgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("source", ["purchased", "rented", "other_company"])
def test_forbidden_provenance_is_refused_and_nothing_imported(
    world: World, api: str, source: str
) -> None:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    body = f"email\nx@{world.tenant.domain}\n".encode()
    r = httpx.post(
        f"{api}/v1/lists/{world.mlist.id}/imports",
        params=declaration(source=source),
        content=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 422 and "refused" in r.json()["detail"][0]["msg"]
    assert imported(world) == (0, 0, 0)


def test_purchase_needs_date_and_a_ticked_box() -> None:
    with pytest.raises(ValueError, match="purchase_date and marketing_checkbox"):
        Provenance.model_validate(declaration(source="purchase"))
    with pytest.raises(ValueError, match="unticked"):
        Provenance.model_validate(
            declaration(source="purchase", purchase_date=iso(5), marketing_checkbox=False)
        )


def test_import_drops_stale_and_invalid_rows_and_reports_them(world: World, api: str) -> None:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    d = world.tenant.domain
    csv_text = (
        "email,phone,name,consented_at,last_activity_at\n"
        f"ok1@{d},+36 30 123 4567,Ok One,{iso(20)},{iso(3)}\n"  # line 2
        f"OK2@{d.upper()},,Ok Two,,\n"  # 3: collected_at of the declaration
        f"stale@{d},,Old,{iso(200)},\n"  # 4
        f"idle@{d},,Idle,{iso(10)},{iso(250)}\n"  # 5
        "not-an-email,,Bad,,\n"  # 6
        f"phone@{d},12,Bad Phone,,\n"  # 7
        f"short@{d},only-two\n"  # 8
        f"ok1@{d},,Dup,,\n"  # 9
        f"date@{d},,Bad date,yesterday,\n"  # 10
    )
    r = httpx.post(
        f"{api}/v1/lists/{world.mlist.id}/imports",
        params=declaration(),
        content=csv_text.encode(),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    result = r.json()
    assert (result["rows_total"], result["rows_imported"], result["rows_dropped"]) == (9, 2, 7)
    reasons = {row["line"]: row["reason"] for row in result["report"]}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 10]
    assert "consent older than 6 months" in reasons[4]
    assert "last activity older than 6 months" in reasons[5]
    assert "invalid email" in reasons[6] and "phone" in reasons[7]
    assert reasons[8] == "wrong number of fields" and "duplicate" in reasons[9]
    assert "bad date" in reasons[10]
    c, cs = t.contact.c, t.consent.c
    with world.ctx.engine.connect() as conn:
        contacts = conn.execute(
            select(c.email, c.phone).where(c.tenant_id == world.tenant_id).order_by(c.id)
        ).all()
        proofs = conn.execute(
            select(cs.channel, cs.source, cs.evidence_ref).where(cs.tenant_id == world.tenant_id)
        ).all()
        report = conn.scalar(
            select(t.list_import.c.report).where(t.list_import.c.tenant_id == world.tenant_id)
        )
    assert contacts == [(f"ok1@{d}", "+36301234567"), (f"OK2@{d}", None)]
    assert sorted(proofs) == [("email", "written_consent", "paper forms, box 7")] * 2 + [
        ("sms", "written_consent", "paper forms, box 7")
    ]
    assert report == result["report"]

    world.publish(world.message("to-imported"))
    world.run(world.finished("to-imported"))
    assert {r.state for r in world.deliveries("to-imported")} == {"sent"}


def test_malformed_csv_is_reported_with_its_line() -> None:
    decl = Provenance.model_validate(declaration())
    checked = check_rows('email,name\na@example.com,A\n"b@example.com,B\n', decl, utcnow())
    assert [r["email"] for r in checked.rows] == ["a@example.com"]
    assert len(checked.report) == 1 and "malformed CSV" in checked.report[0]["reason"]
    with pytest.raises(ValueError, match="header row"):
        check_rows("name\nx\n", decl, utcnow())


def test_cli_import_and_dry_run(world: World, tmp_path: Path) -> None:
    world.contact("anna")
    world.contact("stale", days_ago=400)
    world.contact("nocon", consent=None)
    d = world.tenant.domain
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f"email,name\nnew@{d},New\nbad,Bad\n", encoding="utf-8")
    base = [
        "import",
        "--tenant",
        world.tenant.slug,
        "--list",
        str(world.mlist.id),
        "--topic",
        "news",
        "--collected-at",
        iso(3),
        "--evidence",
        "signup sheet 4",
    ]
    refused = cli(world, *base, "--source", "rented", str(csv_file))
    assert refused.returncode == 2 and "rented" in refused.stderr
    done = cli(world, *base, "--source", "event", str(csv_file))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rows_imported"] == 1 and result["report"][0]["line"] == 3

    msg_file = tmp_path / "campaign.json"
    msg_file.write_text(json.dumps(world.message("dry")), encoding="utf-8")
    dry = cli(world, "campaign", "dry-run", str(msg_file))
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "tenant": world.tenant.slug,
        "campaign_id": "dry",
        "topic": "news",
        "would_send": 2,
        "blocked": {"consent_stale": 1, "no_consent": 1},
        "total": 4,
    }
    assert world.campaign_count() == 0  # nothing written


def test_dry_run_api_and_evidence_export(world: World, api: str) -> None:
    anna = world.contact("anna", form_id=None, signup_ip="203.0.113.9")
    world.contact("stale", days_ago=400)
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{api}/v1/campaigns/dry-run", json=world.message("dry"), headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["would_send"], r.json()["blocked"]) == (1, {"consent_stale": 1})
    other = World.create(world.ctx, world.sink)
    foreign = httpx.post(f"{api}/v1/campaigns/dry-run", json=other.message("x"), headers=auth)
    assert foreign.status_code == 422

    world.publish(world.message("mailed"))
    world.run(world.finished("mailed"))
    bundle = httpx.get(f"{api}/v1/contacts/{anna.id}/evidence", headers=auth)
    assert bundle.status_code == 200
    data = bundle.json()
    assert data["contact"]["email"] == f"anna@{world.tenant.domain}"
    assert [(c["source"], c["status"], c["signup_ip"]) for c in data["consents"]] == [
        ("signup_form", "confirmed", "203.0.113.9")
    ]
    assert [(m["campaign"], m["state"], m["kind"]) for m in data["deliveries"]] == [
        ("mailed", "sent", "promotional")
    ]
    other_key = create_key(world.ctx.engine, "tenant", "crm", other.tenant.slug)
    assert (
        httpx.get(
            f"{api}/v1/contacts/{anna.id}/evidence",
            headers={"Authorization": f"Bearer {other_key}"},
        ).status_code
        == 404
    )
