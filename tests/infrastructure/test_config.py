"""The app's configuration (config file + context) and the CLI-level errors of `cdk synth`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdk_app.config import DEFAULT_CONFIG_FILE, AppConfig, load_config
from cdk_app.connections import DATA_CENTER_CODES, ConfigurationError, Connection, parse_connections
from tests.infrastructure.conftest import REPO


def context(**values: Any) -> Any:
    return values.get


def test_data_center_codes_match_the_refresher() -> None:
    if importlib.util.find_spec("lambda_refresh.zoho") is None:  # pragma: no cover
        pytest.skip("lambda_refresh.zoho is not written yet")
    from lambda_refresh.zoho import DATA_CENTERS

    assert set(DATA_CENTER_CODES) == set(DATA_CENTERS)
    assert len(DATA_CENTER_CODES) == len(set(DATA_CENTER_CODES))


def test_parse_connections_from_context() -> None:
    assert parse_connections("crm-eu:eu, books-us:us") == (
        Connection("crm-eu", "eu"),
        Connection("books-us", "us"),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crm-eu", "has no data center: write NAME:DC"),
        ("crm-eu:mars", "unknown Zoho data center 'mars'"),
        ("Crm:eu", "invalid connection name 'Crm'"),
        ("a:eu,a:us", "duplicate connection name"),
        (" , ", "no connections given"),
    ],
)
def test_bad_context_connections(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_connections(spec)


def test_default_config_file_is_valid_and_used_without_context() -> None:
    config = load_config(context())
    assert config.connections == (Connection("crm-eu", "eu"),)
    assert config.stack_name == "ZohoTokenSync"
    assert not config.sample_consumer
    assert json.loads(DEFAULT_CONFIG_FILE.read_text())["connections"]


def test_context_overrides_the_file_key_by_key(tmp_path: Path) -> None:
    config_file = tmp_path / "team.json"
    config_file.write_text(
        json.dumps(
            {
                "connections": [{"name": "crm-eu", "dc": "eu", "health_probe_path": "/crm/v8/org"}],
                "alarm_email": "team@example.com",
                "service_name": "team-a",
                "reserved_concurrency": None,
            }
        )
    )
    config = load_config(
        context(
            config=str(config_file),
            alarm_email="night@example.com",
            sample_consumer="true",
            log_retention_days="90",
        )
    )
    assert config == AppConfig(
        connections=(Connection("crm-eu", "eu", "/crm/v8/org"),),
        alarm_email="night@example.com",
        service_name="team-a",
        reserved_concurrency=None,
        sample_consumer=True,
        log_retention_days=90,
    )
    relative = load_config(context(config="team.json", connections="x-1:jp"), base_dir=tmp_path)
    assert relative.connections == (Connection("x-1", "jp"),)
    assert relative.service_name == "team-a"


@pytest.mark.parametrize(
    ("file_content", "ctx", "message"),
    [
        ({"connections": [{"name": "crm-eu", "dc": "eu"}], "colour": "blue"}, {}, "unknown key.*colour"),
        ({"connections": [{"name": "crm-eu"}]}, {}, "needs both 'name' and 'dc'"),
        ({"connections": [{"name": "crm-eu", "dc": "eu", "extra": 1}]}, {}, "unknown key"),
        ({"connections": "crm-eu:zz"}, {}, "unknown Zoho data center 'zz'"),
        ({"alarm_email": "a@b.c"}, {}, "no connections configured"),
        (
            {"connections": "a:eu"},
            {"reserved_concurrency": "many"},
            "reserved_concurrency must be a whole number",
        ),
        ({"connections": "a:eu"}, {"sample_consumer": "perhaps"}, "sample_consumer must be true or false"),
        ({"connections": "a:eu"}, {"log_retention_days": "42"}, "log_retention_days 42"),
        ({"connections": "a:eu"}, {"sample_consumer_connection": "b"}, "not one of the connections"),
        ({"connections": "a:eu"}, {"stack_name": "no spaces"}, "stack_name"),
    ],
)
def test_bad_config_is_reported_clearly(
    tmp_path: Path, file_content: dict[str, Any], ctx: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(file_content))
    with pytest.raises(ConfigurationError, match=message):
        load_config(context(config=str(path), **ctx))


def test_operator_roles(tmp_path: Path) -> None:
    config = load_config(context(operator_roles="ops, arn:aws:iam::123456789012:role/path/admins"))
    assert config.operator_roles == ("ops", "arn:aws:iam::123456789012:role/path/admins")
    with pytest.raises(ConfigurationError, match="neither an IAM role name nor a role ARN"):
        load_config(context(operator_roles="arn:aws:iam::123:user/bob"))


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(context(config=str(tmp_path / "nope.json")))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_config(context(config=str(tmp_path / "broken.json")))


@pytest.mark.parametrize(
    ("connections", "message"),
    [("Bad_Name:eu", "invalid connection name 'Bad_Name'"), ("crm-eu:xx", "unknown Zoho data center 'xx'")],
)
def test_app_exits_2_with_the_message_for_bad_connections(
    tmp_path: Path, connections: str, message: str
) -> None:
    """What `cdk synth -c connections=...` shows: one clear line, exit code 2, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["CDK_CONTEXT_JSON"] = json.dumps({"connections": connections})
    env["CDK_OUTDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cdk_app.app"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
