"""The SMS dry run: parts per message, messages per gateway and the estimated cost."""

from __future__ import annotations

import json

from postgate.consent.dry_run import dry_run
from postgate.core.clock import utcnow
from postgate.core.message import parse_campaign
from tests.sms.world import phone_contact, sms_message
from tests.support import World


def test_dry_run_prices_parts_per_route(world: World) -> None:
    phone_contact(world, "Anna", "+36301234567")
    phone_contact(world, "Bela", "+36701234567")
    phone_contact(world, "Jan", "+48501234567")
    phone_contact(world, "Nocon", "+36201234567", consent=False)
    settings = world.ctx.settings.model_copy(
        update={
            "sms_price_per_part": {"smpp": 0.02, "smsapi": 0.05},
            "sms_opt_out_text": "Leiratkozas: STOP",
        }
    )
    text = "Őszi akció, {{ name }}! " + "Minden termék -20% a héten. " * 3
    msg = parse_campaign(json.dumps(sms_message(world, text)), 100_000)
    result = dry_run(world.ctx.engine, msg, 100, utcnow(), settings)
    assert result["would_send"] == 3 and result["blocked"] == {"no_consent": 1}
    sms = result["sms"]
    assert sms["encoding"] == "ucs2" and sms["segments_per_message"] == 2
    assert sms["messages_by_provider"] == {"smpp": 2, "smsapi": 1}
    assert sms["segments"] == 6
    assert sms["estimated_cost"] == round(4 * 0.02 + 2 * 0.05, 4)

    gsm = parse_campaign(
        json.dumps(sms_message(world, text, sms={"sender": "Acme", "policy": "transliterate"})),
        100_000,
    )
    cheaper = dry_run(world.ctx.engine, gsm, 100, utcnow(), settings)["sms"]
    assert cheaper["encoding"] == "gsm7" and cheaper["segments_per_message"] == 1
    unpriced = dry_run(
        world.ctx.engine,
        msg,
        100,
        utcnow(),
        settings.model_copy(update={"sms_price_per_part": {"smpp": 0.02}}),
    )
    assert unpriced["sms"]["estimated_cost"] is None
