"""Running the real ``zoho-token`` console script in a subprocess, and what the tests check it against.

Every run is scanned for secret values: the leak guard's registered ones, everything the simulators in
the test have issued so far, and whatever the test passed in the environment or on stdin. The leak guard
itself only sees this process's captured output, so subprocess output is scanned here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import leakguard

ZOHO_TOKEN = str(Path(sys.executable).with_name("zoho-token"))
PREFIX = "zoho/"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs ``zoho-token`` against the test's moto server; ``sims`` are scanned for issued secrets."""

    aws_url: str
    sims: list[Any] = field(default_factory=list)
    extra_secrets: set[str] = field(default_factory=set)

    def watch(self, *values: str) -> None:
        """Also scan every later run for these values (e.g. a wrong secret a test made up)."""
        self.extra_secrets.update(v for v in values if v)
        leakguard.register(*values)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ZOHO_", "POWERTOOLS_"))}
        base.update(
            {
                "AWS_ENDPOINT_URL": self.aws_url,
                "ZOHO_ALLOW_LOCAL_ACCOUNTS": "true",
                "COLUMNS": "220",
                "NO_COLOR": "1",
            }
        )
        base.update(extra or {})
        return base

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, stdin: str = "") -> Result:
        full_env = self.env(env)
        completed = subprocess.run(  # noqa: S603 - our own console script with test arguments
            [ZOHO_TOKEN, *args],
            env=full_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        result = Result(completed.returncode, completed.stdout, completed.stderr)
        self.assert_no_secrets(result, env=env, stdin=stdin)
        return result

    def secrets(self) -> set[str]:
        values = set(leakguard.registered()) | self.extra_secrets
        for sim in self.sims:
            values.update(sim.issued_secrets())
        return {v for v in values if len(v) >= leakguard.MIN_SECRET_LENGTH}

    def assert_no_secrets(self, result: Result, *, env: Mapping[str, str] | None, stdin: str) -> None:
        candidates = self.secrets()
        for key in ("ZOHO_CLIENT_SECRET", "ZOHO_GRANT_CODE"):
            if env and env.get(key):
                candidates.add(env[key])
        candidates.update(line for line in stdin.splitlines() if len(line) >= leakguard.MIN_SECRET_LENGTH)
        leaked = sorted(hashlib.sha256(v.encode()).hexdigest()[:12] for v in candidates if v in result.output)
        assert not leaked, f"secret value(s) in zoho-token's output: fingerprints {leaked} (values not shown)"


# ---------------------------------------------------------------------------------------------------------
# AWS state


def snapshot(sm: Any, name: str, *, prefix: str = PREFIX) -> dict[str, Any]:
    """Both secrets of a connection, byte for byte: value, current version and every version's stages."""
    state: dict[str, Any] = {}
    for suffix in ("credentials", "access-token"):
        secret_id = f"{prefix}{name}/{suffix}"
        try:
            current = sm.get_secret_value(SecretId=secret_id)
        except sm.exceptions.ResourceNotFoundException:
            state[suffix] = None
            continue
        versions = sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"]
        state[suffix] = {
            "SecretString": current["SecretString"],
            "VersionId": current["VersionId"],
            "versions": sorted((v["VersionId"], tuple(sorted(v["VersionStages"]))) for v in versions),
        }
    return state


def secret_json(sm: Any, secret_id: str, **kwargs: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=secret_id, **kwargs)["SecretString"])
    return value


def token_requests(*sims: Any) -> int:
    return sum(sum(sim.stats.token_requests.values()) for sim in sims)


# ---------------------------------------------------------------------------------------------------------
# A small JSON Schema checker (the subset the documented schemas use), so no dependency is added.


class SchemaError(AssertionError):
    pass


def _type_ok(value: Any, expected: str) -> bool:
    checks: dict[str, Any] = {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return bool(checks[expected](value))


def validate(value: Any, schema: Mapping[str, Any], *, strict: bool = True) -> None:
    """Raise :class:`SchemaError` naming the path where ``value`` breaks ``schema``.

    Supports: type (name or list), enum, const, pattern, required, properties, items, minimum, anyOf,
    $defs/$ref (local). ``strict`` also rejects keys an object schema does not list in ``properties``.
    """
    _validate(value, schema, schema, "$", strict)


def _validate(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: str, strict: bool
) -> None:
    if "$ref" in schema:
        ref = str(schema["$ref"])
        assert ref.startswith("#/$defs/"), ref
        _validate(value, root["$defs"][ref.removeprefix("#/$defs/")], root, path, strict)
        return
    if "anyOf" in schema:
        failures = []
        for option in schema["anyOf"]:
            try:
                _validate(value, option, root, path, strict)
            except SchemaError as err:
                failures.append(str(err))
            else:
                break
        else:
            raise SchemaError(f"{path}: matches none of anyOf ({'; '.join(failures)})")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, t) for t in names):
            raise SchemaError(f"{path}: expected {names}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        raise SchemaError(f"{path}: expected {schema['const']!r}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        raise SchemaError(f"{path}: {value!r} does not match {schema['pattern']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError(f"{path}: missing {key!r}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], root, f"{path}.{key}", strict)
            elif strict and properties:
                raise SchemaError(f"{path}: undocumented key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _validate(item, schema["items"], root, f"{path}[{index}]", strict)
