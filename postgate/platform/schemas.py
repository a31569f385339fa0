"""The JSON Schemas of the queue messages, generated from their pydantic models and
shipped as files in ``postgate/schemas/`` (a test checks the files match the models;
``python -m postgate.platform.schemas`` rewrites them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).resolve().parent.parent / "schemas"
NAMES = ("campaign.v1", "contacts.v1", "event.v1")


def schema(name: str) -> dict[str, Any]:
    if name == "campaign.v1":
        from postgate.core.message import json_schema
    elif name == "contacts.v1":
        from postgate.core.contacts_message import json_schema
    elif name == "event.v1":
        from postgate.core.events import json_schema
    else:
        raise ValueError(f"no schema {name!r}; there are {', '.join(NAMES)}")
    document = json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:postgate:schema:{name}",
        **document,
    }


def text(name: str) -> str:
    return json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n"


def path(name: str) -> Path:
    return DIRECTORY / f"{name}.schema.json"


def shipped(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path(name).read_text(encoding="utf-8"))
    return loaded


if __name__ == "__main__":
    for name in NAMES:
        path(name).write_text(text(name), encoding="utf-8")
        print(f"wrote {path(name)}")
