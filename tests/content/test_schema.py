"""The module format is published as JSON Schema; the committed file is the generated one."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from content.loader import MODULES_DIR
from content.models import Module
from leerbot.cli import app

SCHEMA = Path(__file__).resolve().parents[2] / "content" / "schema" / "module.schema.json"


def test_committed_schema_is_what_leerbot_content_schema_prints() -> None:
    result = CliRunner().invoke(app, ["content", "schema"])
    assert result.exit_code == 0
    assert SCHEMA.read_text(encoding="utf-8") == result.stdout, (
        "content/schema/module.schema.json is stale: "
        "run `leerbot content schema > content/schema/module.schema.json`"
    )


def test_schema_accepts_plain_strings_for_texts_and_options() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert {"type": "string", "description": "Dutch text"} in schema["$defs"]["Text"]["anyOf"]
    assert {"type": "string", "description": "Dutch label"} in schema["$defs"]["Option"]["anyOf"]
    assert schema == Module.model_json_schema(by_alias=True)


def test_every_shipped_module_uses_only_fields_the_schema_knows() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    top = set(schema["properties"])
    step = set(schema["$defs"]["Step"]["properties"])
    for path in sorted(MODULES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(data) <= top, path.name
        for item in data["steps"]:
            assert set(item) <= step, f"{path.name}: {item['id']}"
