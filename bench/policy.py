"""Cost of the content policy per campaign and of DKIM signing per message.

    python bench/policy.py [--runs 50]

Prints one JSON object: milliseconds to review a ~20 KB text + ~20 KB HTML campaign
(sample render and lexicon scan, as the planner does once per campaign), to render one
personalised message, and to DKIM-sign it with each algorithm.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from email.utils import formatdate

from postgate.campaigns.content_review import review
from postgate.core import dkim_signing, lexicon
from postgate.core.message import CampaignV1
from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData

PARAGRAPH = (
    "Kedves {{ name }}! Tavaszi akciónk minden kerti bútorra és grillre érvényes, "
    "ingyenes szállítással. Dear customer, our spring sale covers garden furniture "
    "and barbecues, with free delivery. "
)


def per_call_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - started) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    text = PARAGRAPH * 100
    html = "".join(f"<p>{PARAGRAPH}</p>" for _ in range(100))
    msg = CampaignV1.model_validate(
        {
            "version": "campaign.v1",
            "tenant": "acme",
            "campaign_id": "bench",
            "channel": "email",
            "kind": "promotional",
            "topic": "news",
            "audience": [1],
            "from": {"email": "news@acme.example"},
            "content": {"subject": "Spring sale, {{ name }}", "text": text, "html": html},
        }
    )
    lexicon.load()
    content = CampaignContent(
        1,
        "acme",
        "acme.example",
        "promotional",
        "Spring sale, {{ name }}",
        text,
        html,
        "news@acme.example",
        "Acme",
    )
    camp = CompiledCampaign(content, "secret", "https://pg.example", "bounces.example")
    date = formatdate(usegmt=True)
    rendered = camp.render(RecipientData(1, "anna@x.example", "Anna"), date)
    result: dict[str, object] = {
        "campaign_chars": len(text) + len(html),
        "content_review_ms": round(per_call_ms(lambda: review(msg), runs), 2),
        "message_bytes": len(rendered),
        "render_ms": round(
            per_call_ms(
                lambda: camp.render(RecipientData(1, "anna@x.example", "Anna"), date), runs
            ),
            3,
        ),
    }
    for algorithm in dkim_signing.ALGORITHMS:
        private, _ = dkim_signing.generate(algorithm)
        signer = dkim_signing.Signer(
            dkim_signing.DkimKey("acme.example", "s1", algorithm, private.encode())
        )
        result[f"dkim_{algorithm}_ms"] = round(  # the key parsed once, as the sender does
            per_call_ms(lambda s=signer: s.sign(rendered), runs), 3
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
