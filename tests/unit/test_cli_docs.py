"""docs/cli.md publishes the JSON schemas the end-to-end tests validate ``status``/``audit --json`` with.

After changing ``tests/e2e/schemas.py`` rewrite the documented copies with
``.venv/bin/python -m tests.unit.test_cli_docs``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.schemas import AUDIT_SCHEMA, STATUS_SCHEMA

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
SCHEMAS = {"status": STATUS_SCHEMA, "audit": AUDIT_SCHEMA}


def _block(text: str, name: str) -> re.Match[str] | None:
    return re.search(rf"<!-- schema:{name} -->\n```json\n(.*?)\n```\n<!-- /schema:{name} -->", text, re.S)


def compact_json(value: Any, indent: int = 0, start: int = 0, width: int = 104) -> str:
    """JSON with short objects and arrays kept on one line, for reading in the docs."""
    one = json.dumps(value)
    if start + len(one) <= width or not isinstance(value, dict | list) or not value:
        return one
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            prefix = json.dumps(key) + ": "
            items.append(pad + prefix + compact_json(item, indent + 2, indent + 2 + len(prefix), width))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return (
        "[\n"
        + ",\n".join(pad + compact_json(v, indent + 2, indent + 2, width) for v in value)
        + "\n"
        + " " * indent
        + "]"
    )


@pytest.mark.parametrize("name", SCHEMAS)
def test_documented_schema_is_the_one_the_tests_enforce(name: str) -> None:
    match = _block(DOC.read_text(encoding="utf-8"), name)
    assert match is not None, f"docs/cli.md lacks the <!-- schema:{name} --> block"
    assert json.loads(match.group(1)) == SCHEMAS[name], "run: .venv/bin/python -m tests.unit.test_cli_docs"


def rewrite() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, schema in SCHEMAS.items():
        match = _block(text, name)
        if match is None:
            raise SystemExit(f"docs/cli.md lacks the <!-- schema:{name} --> block")
        text = text[: match.start(1)] + compact_json(schema) + text[match.end(1) :]
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    rewrite()
