"""The AsyncAPI document describes the queues and the event stream as they are: every
reference resolves, every payload file is a shipped schema, and real events validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from postgate.core.events import EventType
from postgate.platform import schemas

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_asyncapi_document_hangs_together() -> None:
    doc = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    files = set()
    for ref in refs(doc):
        if ref.startswith("#/"):
            assert resolve(doc, ref) is not None, ref
        else:
            target = (DOC.parent / ref).resolve()
            assert target.is_file(), ref
            files.add(target.name)
    assert files == {schemas.path(name).name for name in schemas.NAMES}
    for operation in doc["operations"].values():
        assert operation["action"] in ("send", "receive")
        resolve(doc, operation["channel"]["$ref"])
    exchange = doc["channels"]["events"]["bindings"]["amqp"]["exchange"]
    assert exchange == {"name": "postgate.events", "type": "topic", "durable": True}


def test_the_event_schema_names_every_type_and_refuses_strangers() -> None:
    schema = schemas.shipped("event.v1")
    assert set(schema["$defs"]["EventType"]["enum"]) == {str(t) for t in EventType}
    good = {
        "schema": "event.v1",
        "id": "6f1c0f3e-1d7b-5a51-9c1e-6f0f1d9d2b11",
        "seq": 7,
        "type": "feedback.bounce",
        "tenant": "acme",
        "channel": "email",
        "campaign_id": 3,
        "campaign_external_id": "spring",
        "delivery_id": 12,
        "recipient": "anna@example.com",
        "occurred_at": "2026-12-02T10:00:00Z",
        "detail": {"hard": True, "reason": "user_unknown"},
    }
    jsonschema.validate(good, schema)
    for bad in ({**good, "type": "delivery.exploded"}, {**good, "extra": 1}, {**good, "seq": 0}):
        try:
            jsonschema.validate(bad, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"accepted {bad}")
