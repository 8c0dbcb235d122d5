"""The documented JSON schemas of ``zoho-token status --json`` and ``zoho-token audit --json`` (schema 1).

These are the contract with scripts, kept apart from the product code on purpose: a change to the
output that is not also made here (and in docs/cli.md, which a unit test compares) fails the suite.
The published schemas leave objects open (scripts must ignore fields added later within schema 1); the
tests validate with ``strict=True``, so every field the CLI emits must be documented here.
"""

from __future__ import annotations

from typing import Any

TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
TIME_OR_NULL = {"type": ["string", "null"], "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
STR_OR_NULL = {"type": ["string", "null"]}

STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "zoho-token status --json",
    "type": "object",
    "required": ["schema", "generated_at", "prefix", "region", "connections"],
    "properties": {
        "schema": {"const": 1},
        "generated_at": TIME,
        "prefix": {"type": "string"},
        "region": {"type": "string"},
        "connections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "connection",
                    "dc",
                    "status",
                    "expires_at",
                    "expires_in_seconds",
                    "refreshed_at",
                    "token_fingerprint",
                    "api_domain",
                    "scope",
                    "error",
                    "credentials_version",
                    "credentials_changed_at",
                    "token_credentials_version",
                    "revoked",
                    "access_token_secret",
                    "credentials_secret",
                    "notes",
                ],
                "properties": {
                    "connection": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                    "dc": STR_OR_NULL,
                    "status": {
                        "enum": [
                            "pending",
                            "ok",
                            "failing",
                            "revoked",
                            "misconfigured",
                            "missing",
                            "unreadable",
                        ]
                    },
                    "expires_at": TIME_OR_NULL,
                    "expires_in_seconds": {"type": ["integer", "null"]},
                    "refreshed_at": TIME_OR_NULL,
                    "token_fingerprint": {"type": ["string", "null"], "pattern": "^[0-9a-f]{12}$"},
                    "api_domain": STR_OR_NULL,
                    "scope": STR_OR_NULL,
                    "error": {
                        "type": ["object", "null"],
                        "required": ["code", "message", "since"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "since": TIME_OR_NULL,
                        },
                    },
                    "credentials_version": STR_OR_NULL,
                    "credentials_changed_at": TIME_OR_NULL,
                    "token_credentials_version": STR_OR_NULL,
                    "revoked": {
                        "type": ["object", "null"],
                        "required": ["at", "by"],
                        "properties": {"at": TIME_OR_NULL, "by": STR_OR_NULL},
                    },
                    "access_token_secret": {"type": "string"},
                    "credentials_secret": {"type": "string"},
                    "notes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

WINDOW = {
    "type": "object",
    "required": ["from", "to", "seconds", "ongoing"],
    "properties": {
        "from": TIME,
        "to": TIME,
        "seconds": {"type": "integer", "minimum": 0},
        "ongoing": {"type": "boolean"},
    },
}

AUDIT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "zoho-token audit --json",
    "type": "object",
    "required": ["schema", "generated_at", "since", "until", "region", "prefix", "log_group", "connections"],
    "$defs": {"window": WINDOW},
    "properties": {
        "schema": {"const": 1},
        "generated_at": TIME,
        "since": TIME,
        "until": TIME,
        "region": {"type": "string"},
        "prefix": {"type": "string"},
        "log_group": STR_OR_NULL,
        "connections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "connection",
                    "sources",
                    "events",
                    "refresh_count",
                    "cadence",
                    "longest_gap",
                    "expired_windows",
                    "credentials_changes",
                    "access",
                    "cloudtrail",
                    "notes",
                ],
                "properties": {
                    "connection": {"type": "string"},
                    "sources": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "source",
                                "name",
                                "read",
                                "from",
                                "to",
                                "records",
                                "retention_days",
                                "note",
                            ],
                            "properties": {
                                "source": {
                                    "enum": ["log_group", "access_token_versions", "credentials_versions"]
                                },
                                "name": STR_OR_NULL,
                                "read": {"type": "boolean"},
                                "from": TIME_OR_NULL,
                                "to": TIME_OR_NULL,
                                "records": {"type": "integer", "minimum": 0},
                                "retention_days": {"type": ["integer", "null"]},
                                "note": {"type": "string"},
                            },
                        },
                    },
                    "events": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "time",
                                "event",
                                "status",
                                "previous_status",
                                "token_fingerprint",
                                "expires_at",
                                "error_code",
                                "credentials_version",
                                "secret_version",
                                "forced",
                                "source",
                            ],
                            "properties": {
                                "time": TIME,
                                "event": {"enum": ["token_refreshed", "status_changed", "secret_written"]},
                                "status": STR_OR_NULL,
                                "previous_status": STR_OR_NULL,
                                "token_fingerprint": {
                                    "type": ["string", "null"],
                                    "pattern": "^[0-9a-f]{12}$",
                                },
                                "expires_at": TIME_OR_NULL,
                                "error_code": STR_OR_NULL,
                                "credentials_version": STR_OR_NULL,
                                "secret_version": STR_OR_NULL,
                                "forced": {"type": ["boolean", "null"]},
                                "source": {"enum": ["log", "secret_version", "log+secret_version"]},
                            },
                        },
                    },
                    "refresh_count": {"type": "integer", "minimum": 0},
                    "cadence": {
                        "type": ["object", "null"],
                        "required": ["median_seconds", "mean_seconds", "intervals"],
                        "properties": {
                            "median_seconds": {"type": "integer", "minimum": 0},
                            "mean_seconds": {"type": "integer", "minimum": 0},
                            "intervals": {"type": "integer", "minimum": 1},
                        },
                    },
                    "longest_gap": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/window"}]},
                    "expired_windows": {"type": "array", "items": {"$ref": "#/$defs/window"}},
                    "credentials_changes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["version_id", "created_at", "stages"],
                            "properties": {
                                "version_id": {"type": "string"},
                                "created_at": TIME_OR_NULL,
                                "stages": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                    "access": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["secret", "arn", "kms_key", "resource_policy", "note"],
                            "properties": {
                                "secret": {"type": "string"},
                                "arn": STR_OR_NULL,
                                "kms_key": STR_OR_NULL,
                                "resource_policy": {
                                    "type": ["array", "null"],
                                    "items": {
                                        "type": "object",
                                        "required": ["effect", "principals", "actions", "conditions"],
                                        "properties": {
                                            "effect": {"type": "string"},
                                            "principals": {"type": "array", "items": {"type": "string"}},
                                            "actions": {"type": "array", "items": {"type": "string"}},
                                            "conditions": {"type": "boolean"},
                                        },
                                    },
                                },
                                "note": {"type": "string"},
                            },
                        },
                    },
                    "cloudtrail": {
                        "type": "object",
                        "required": ["note", "lookup_events", "athena_sql", "cloudtrail_lake_sql"],
                        "properties": {
                            "note": {"type": "string"},
                            "lookup_events": {"type": "array", "items": {"type": "string"}},
                            "athena_sql": {"type": "string"},
                            "cloudtrail_lake_sql": {"type": "string"},
                        },
                    },
                    "notes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
