"""The JSON Schemas shipped in the package are the ones the models make, and they say
what the validators say about a message."""

from __future__ import annotations

import pytest

from postgate.platform import schemas


@pytest.mark.parametrize("name", schemas.NAMES)
def test_shipped_schema_matches_the_model(name: str) -> None:
    assert schemas.shipped(name) == schemas.schema(name), (
        f"{schemas.path(name)} is stale: run python -m postgate.platform.schemas"
    )
    assert schemas.path(name).read_text(encoding="utf-8") == schemas.text(name)


def test_contacts_schema_names_the_rules_fields() -> None:
    doc = schemas.shipped("contacts.v1")
    assert doc["properties"]["version"]["const"] == "contacts.v1"
    assert doc["additionalProperties"] is False
    contact = doc["$defs"]["ContactIn"]
    assert contact["required"] == ["external_id"]
    assert set(doc["$defs"]["ConsentIn"]["required"]) == {
        "channel",
        "topic",
        "source",
        "consented_at",
        "evidence",
    }
