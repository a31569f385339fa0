"""Suppression lists in and out as CSV and JSON: bad rows reported and the rest kept,
erased entries kept hashed, and an imported entry blocks the next campaign."""

from __future__ import annotations

import csv
import io

import httpx

from postgate.http.auth import create_key
from postgate.tenants.erasure import address_hash, erase
from tests.support import World


def test_import_export_round_trip(world: World, api: str) -> None:
    world.contact("anna")
    world.contact("bela")
    erase(world.ctx.engine, world.tenant_id, f"gone@{world.tenant.domain}", actor="test")
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    domain = world.tenant.domain
    hashed = address_hash(f"old@{domain}")
    body = (
        f"channel,address,reason,detail\n"
        f",anna@{domain.upper()},unsubscribe,asked by phone\n"
        f"email,not-an-address,manual,\n"
        f"sms,+36 20 123 4567,stop,\n"
        f"email,{hashed},erasure,\n"
        f",{hashed},erasure,\n"
        f"email,x@{domain},spam,\n"
        f"email,y@{domain}\n"
        f",anna@{domain},manual,twice\n"
    )
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}) as http:
        done = http.post(
            "/v1/suppressions/imports", content=body.encode(), headers={"content-type": "text/csv"}
        )
        assert done.status_code == 201, done.text
        result = done.json()
        assert (result["rows_total"], result["imported"], result["dropped"]) == (8, 3, 5)
        lines = {r["line"]: r["reason"] for r in result["report"]}
        assert "invalid email" in lines[3] and "needs its channel" in lines[6]
        assert "reason must be one of" in lines[7] and lines[8] == "wrong number of fields"
        assert lines[9] == "duplicate of an earlier entry"
        as_json = http.post(
            "/v1/suppressions/imports",
            json=[
                {"address": f"bela@{domain}", "reason": "complaint"},
                {"address": 42},
                {"address": f"anna@{domain}"},
            ],
        ).json()
        assert (as_json["imported"], as_json["already_suppressed"], as_json["dropped"]) == (1, 1, 1)
        assert (
            http.post(
                "/v1/suppressions/imports",
                content=b"[oops",
                headers={"content-type": "application/json"},
            ).status_code
            == 422
        )
        exported = http.get("/v1/suppressions").json()["suppressions"]
        by_address = {e["address"]: e for e in exported}
        assert by_address[f"anna@{domain}"]["reason"] == "unsubscribe"
        assert by_address["+36201234567"]["channel"] == "sms"
        assert by_address[hashed]["hashed"] and by_address[address_hash(f"gone@{domain}")]["hashed"]
        assert not any(f"gone@{domain}" in e["address"] for e in exported)
        text = http.get("/v1/suppressions", params={"format": "csv", "channel": "email"})
        assert text.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(text.text)))
        assert {r["address"] for r in rows} == {
            e["address"] for e in exported if e["channel"] == "email"
        }
    world.publish(world.message("after-import"))
    world.run(world.finished("after-import"))
    states = {r.address: (r.state, r.reason) for r in world.deliveries("after-import")}
    assert states == {
        f"anna@{domain}": ("blocked", "suppressed"),
        f"bela@{domain}": ("blocked", "suppressed"),
    }


def test_a_garbled_csv_header_is_refused_with_a_reason(world: World, api: str) -> None:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}) as http:
        done = http.post(
            "/v1/suppressions/imports", content=b'"', headers={"content-type": "text/csv"}
        )
        assert done.status_code == 422, done.text
        assert "malformed CSV header" in done.text
