"""JSON Schema of every event, generated from the models; the checked-in copies live in shared/schemas/.

`python -m ticketstream_shared.contract.schema DIR` rewrites them; a test fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .codec import EVENT_TYPES_BY_TOPIC


def generate_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, one file per event type and schema version."""
    schemas = {}
    for model in (model for models in EVENT_TYPES_BY_TOPIC.values() for model in models):
        event_type = model.model_fields["event_type"].default
        version = model.model_fields["schema_version"].default
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://ticketstream.dev/schemas/{event_type}.v{version}.json"
        schemas[f"{event_type}.v{version}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return schemas


def write_schemas(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    for name, text in generate_schemas().items():
        (directory / name).write_text(text)


if __name__ == "__main__":
    write_schemas(Path(sys.argv[1]))
