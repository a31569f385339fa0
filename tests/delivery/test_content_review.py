"""The door check: templates are rendered once in the limited sandbox before a campaign is
accepted, so escapes, syntax errors and runaways are refused with the part named."""

from __future__ import annotations

import pytest

from postgate.campaigns.content_review import review, sample_render
from postgate.core.message import CampaignV1, MessageError


@pytest.mark.parametrize(
    ("part", "source", "why"),
    [
        ("subject", "{{ name.__class__.__mro__ }}", "content.subject: template error: access to"),
        ("text", "{% for x in y %}", "content.text: template error"),
        ("html", "{{ 'x' * 10000000 }}", "content.html: template built a value over"),
        ("text", "{{ 1 / 0 }}", "content.text: template fails to render: ZeroDivisionError"),
    ],
)
def test_bad_templates_are_refused_naming_the_part(part: str, source: str, why: str) -> None:
    parts = {"subject": "Hi", "text": "Hello", "html": ""} | {part: source}
    with pytest.raises(MessageError) as err:
        sample_render(parts["subject"], parts["text"], parts["html"])
    assert str(err.value).startswith(why)


def test_good_templates_render_with_empty_personalisation() -> None:
    assert sample_render(
        "Hi {{ name }}!", "{{ contact.city or 'Budapest' }}", "<b>{{ email }}</b>"
    ) == ["Hi !", "Budapest", "<b></b>"]


def test_review_reads_what_only_the_rendering_shows() -> None:
    msg = CampaignV1.model_validate(
        {
            "version": "campaign.v1",
            "tenant": "acme",
            "campaign_id": "c",
            "channel": "email",
            "kind": "promotional",
            "topic": "news",
            "audience": [1],
            "from": {"email": "news@acme.example"},
            "content": {"subject": "Hi", "text": "{{ 'ca' ~ 'sino' }} night", "html": ""},
        }
    )
    verdict = review(msg)
    assert verdict.action == "flag" and verdict.matches == {"gambling": ["casino*"]}
