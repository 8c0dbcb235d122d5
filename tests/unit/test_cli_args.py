"""The ``zoho-token`` command line: secrets never accepted or echoed, usage errors caught before any call.

Runs ``main`` in-process with AWS pointed at a closed port and no simulator: every case here must be
decided before anything is sent anywhere.
"""

from __future__ import annotations

import socket

import pytest

from zoho_token.cli import main, refused_secret_option

SECRET = "5f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4e5"
CLIENT_ID = "1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
CODE = "1000.0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"


@pytest.fixture(autouse=True)
def nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for name in ("ZOHO_CLIENT_SECRET", "ZOHO_GRANT_CODE", "ZOHO_ALLOW_LOCAL_ACCOUNTS", "ZOHO_SECRET_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert SECRET not in output
    return code, output


@pytest.mark.parametrize(
    "arg",
    [
        "--client-secret",
        "--client_secret",
        "--CLIENT-SECRET",
        f"--client-secret={SECRET}",
        "--secret",
        "---secret",
        f"--refresh-token={SECRET}",
        "--refresh_token",
        "--access-token",
        "--token",
    ],
)
def test_secret_options_are_refused_before_parsing(arg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused_secret_option(["bootstrap", arg, SECRET]) is not None
    code, output = run(capsys, "bootstrap", "--connection", "crm-eu", arg, SECRET)
    assert code == 2
    assert "shell history" in output
    assert "ps" in output


def test_lookalike_options_and_values_after_double_dash_are_not_refused() -> None:
    assert refused_secret_option(["status", "--connection", "secret"]) is None
    assert refused_secret_option(["bootstrap", "--client-id", CLIENT_ID]) is None
    assert refused_secret_option(["bootstrap", "--", "--client-secret"]) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["bootstrap", "--connection", "crm-eu", "--client-id", CLIENT_ID, "--dc", "eu", "--bogus", SECRET],
        ["bootstrap", "--connection", "crm-eu", "--client-id", CLIENT_ID, "--dc", "eu", SECRET],
        ["bootstrap", "--conn", SECRET],  # prefix matching is off: not taken as --connection
        ["status", f"--bogus={SECRET}"],
        [SECRET],
        ["revoke", "--connection", "crm-eu", "-y", SECRET],
    ],
)
def test_unknown_arguments_are_never_echoed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, *argv)
    assert code == 2
    assert "not shown" in output or "required" in output


@pytest.mark.parametrize("command", ["bootstrap", "status", "audit", "refresh", "revoke", "demo"])
def test_every_command_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, command, "--help")
    assert code == 0
    assert "example:" in output
    assert f"zoho-token {command}" in output


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys)
    assert code == 2
    assert "bootstrap" in output


USAGE_ERRORS = {
    "bad name": (["--connection", "CRM_EU", "--dc", "eu"], "invalid connection name"),
    "no dc": (["--connection", "crm-eu"], "--dc"),
    "unknown dc": (["--connection", "crm-eu", "--dc", "mars"], "--dc must be one of"),
    "dc and url disagree": (
        ["--connection", "crm-eu", "--dc", "us", "--accounts-url", "https://accounts.zoho.eu"],
        "disagree",
    ),
    "look-alike url": (
        ["--connection", "crm-eu", "--accounts-url", "https://accounts.zoho.eu.evil.test"],
        "not a Zoho",
    ),
    "loopback without opt-in": (
        ["--connection", "crm-eu", "--dc", "eu", "--accounts-url", "http://127.0.0.1:9"],
        "ZOHO_ALLOW_LOCAL_ACCOUNTS",
    ),
    "revoke-old alone": (
        ["--connection", "crm-eu", "--dc", "eu", "--revoke-old"],
        "--revoke-old needs --replace",
    ),
    "bad code": (["--connection", "crm-eu", "--dc", "eu", "--code", "4b1f-not-a-code"], "does not look like"),
    "bad scope": (["--connection", "crm-eu", "--dc", "eu", "--scope", "ZohoCRM.modules.ALL;rm"], "--scope"),
    "bad prefix": (["--connection", "crm-eu", "--dc", "eu", "--prefix", "zoho prod/"], "prefix"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_bootstrap_input_errors_exit_2_before_any_call(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, phrase = USAGE_ERRORS[case]
    code, output = run(capsys, "bootstrap", "--client-id", CLIENT_ID, *args)
    assert code == 2, output
    assert phrase in output
    assert "could not reach AWS" not in output


@pytest.mark.parametrize("client_id", ["1000.abc", "2000.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123", SECRET])
def test_client_id_shape_is_checked_without_echoing_it(
    client_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run(capsys, "bootstrap", "--connection", "crm-eu", "--dc", "eu", "--client-id", client_id)
    assert code == 2
    assert "does not look like a Zoho client id" in output
    assert client_id not in output


def test_aws_unreachable_is_a_failure_with_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "status")
    assert code == 1
    assert "could not reach AWS" in output
    assert "AWS_ENDPOINT_URL" in output


def test_missing_region_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    code, output = run(capsys, "status")
    assert code == 2
    assert "--region" in output


def test_status_and_audit_take_several_connections() -> None:
    from zoho_token.cli import build_parser

    parser = build_parser(with_demo=False)
    for command in ("status", "audit"):
        args, extras = parser.parse_known_args(
            [command, "--connection", "crm-eu", "--connection", "books-us"]
        )
        assert extras == []
        assert args.connection == ["crm-eu", "books-us"]
