"""``zoho-token``: the operator CLI (console script ``zoho_token.cli:main``).

Commands: ``bootstrap``, ``status``, ``audit``, ``refresh``, ``revoke`` and ``demo``; see docs/cli.md.
Exit codes: 0 success, 1 a Zoho or AWS failure (the message says what to do), 2 bad usage or input.

The command line is treated as something that may hold a secret by mistake: options that look like a
client secret or token are refused before parsing (argv ends up in shell history and ``ps``), and
argparse's own messages, which quote unknown arguments back, are replaced by ones that never do.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NoReturn

from zoho_token.console import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliError, Output

#: Option names (normalised: lowercase, '-' for '_') that would put a secret into argv.
_SECRET_OPTIONS: Final = frozenset(
    {
        "client-secret",
        "clientsecret",
        "secret",
        "refresh-token",
        "refreshtoken",
        "access-token",
        "accesstoken",
        "token",
        "password",
    }
)
_COMMANDS: Final = ("bootstrap", "status", "audit", "refresh", "revoke", "demo")
# argparse messages that only ever contain option names defined here, never user input.
_SAFE_MESSAGES: Final = (
    "the following arguments are required:",
    "one of the arguments",
)
_SAFE_SUFFIXES: Final = (": expected one argument",)


class _UsageError(Exception):
    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


def _safe_message(message: str, prog: str) -> str:
    if (
        message.startswith(_SAFE_MESSAGES)
        or message.endswith(_SAFE_SUFFIXES)
        or "not allowed with argument" in message
    ):
        return message
    if "invalid choice" in message and prog.strip() == "zoho-token":
        return "unknown command (not shown: it may contain a secret); use one of: " + ", ".join(_COMMANDS)
    return f"invalid argument(s) (not shown: they may contain secrets); see {prog} --help"


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors without quoting what was typed."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(_safe_message(message, self.prog), self.prog)


def refused_secret_option(argv: Sequence[str]) -> str | None:
    """The normalised name of the first option that would carry a secret in argv, if any."""
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name = arg.split("=", 1)[0].lstrip("-").lower().replace("_", "-")
        if name in _SECRET_OPTIONS:
            return f"--{name}"
    return None


def _refusal_message(option: str) -> str:
    if option in ("--refresh-token", "--refreshtoken", "--access-token", "--accesstoken", "--token"):
        return (
            f"refusing {option}: zoho-token never takes tokens on the command line, where they end up in "
            "shell history and in the process list (ps). The bootstrap exchanges a grant code (--code, env "
            "ZOHO_GRANT_CODE or its prompt) and stores the refresh token itself. If you typed a real token, "
            "delete that line from your shell history."
        )
    return (
        f"refusing {option}: a client secret on the command line ends up in shell history and in the process "
        "list (ps), where other users and tools can read it. Set it in the environment variable "
        "ZOHO_CLIENT_SECRET, or leave it out and zoho-token bootstrap asks for it with hidden input. If you "
        "typed the real secret, delete that line from your shell history."
    )


# ---------------------------------------------------------------------------------------------------------
# Parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _common(parser: argparse.ArgumentParser, *, json_help: str | None) -> None:
    parser.add_argument(
        "--prefix",
        metavar="P",
        help="secret name prefix (default: env ZOHO_SECRET_PREFIX, else zoho/)",
    )
    parser.add_argument(
        "--region", metavar="R", help="AWS region of the stack (default: env AWS_REGION / AWS_DEFAULT_REGION)"
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress or notes; warnings and errors only"
    )
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)


_BOOTSTRAP_EPILOG = """\
The client secret comes from env ZOHO_CLIENT_SECRET or a hidden prompt, never from the command line.
The grant code comes from --code, env ZOHO_GRANT_CODE or a prompt that appears once every check has
passed, so you can generate the code (Self Client > Generate Code) at that moment.

example:
  read -rs ZOHO_CLIENT_SECRET && export ZOHO_CLIENT_SECRET   # or let bootstrap prompt for it
  zoho-token bootstrap --connection crm-eu --dc eu --client-id 1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123

  # replace the refresh token of a running connection and revoke the old one at Zoho:
  zoho-token bootstrap --connection crm-eu --dc eu --client-id 1000.ABC... --replace --revoke-old
"""
_STATUS_EPILOG = """\
example:
  zoho-token status
  zoho-token status --connection crm-eu --json | jq '.connections[0].expires_in_seconds'
"""
_AUDIT_EPILOG = """\
--since takes 90m, 24h, 7d, 2w or an ISO time such as 2026-11-20T00:00:00Z (default 7d).

example:
  zoho-token audit --connection crm-eu --since 30d --log-group /aws/lambda/zoho-token-refresher
  zoho-token audit --json > audit.json
"""
_REFRESH_EPILOG = """\
Runs the refresher's own logic for one connection from this machine: a fresh token is left alone
unless --force, and Zoho's rate budget is respected. Exit code 1 when the connection failed, is
revoked or misconfigured, or the refresh was refused (the message says why and until when).

example:
  zoho-token refresh --connection crm-eu --force
"""
_REVOKE_EPILOG = """\
Revokes the connection's refresh token at Zoho (which kills every access token made from it), removes
the dead token from the access-token secret and records status 'revoked' with when and by whom (your
AWS identity). The refresher then leaves the connection alone until it is bootstrapped again.

example:
  zoho-token revoke --connection crm-eu          # asks you to type the name to confirm
  zoho-token revoke --connection crm-eu --yes    # no question (scripts never get one)
"""
_DEMO_EPILOG = """\
example:
  zoho-token demo --hours 48 --connections 3
"""


def build_parser(*, with_demo: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zoho-token",
        description="Operate zoho-token-sync connections: Zoho OAuth tokens kept fresh in AWS Secrets Manager.",
        epilog="example:\n  zoho-token bootstrap --help\n  zoho-token status\n\n"
        "exit codes: 0 success, 1 Zoho/AWS failure (the message says what to do), 2 bad usage or input",
        formatter_class=_formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, epilog: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=_formatter,
            allow_abbrev=False,
        )

    bootstrap = add(
        "bootstrap", "exchange a Self Client grant code and store the connection's secrets", _BOOTSTRAP_EPILOG
    )
    bootstrap.add_argument("--connection", required=True, metavar="NAME", help="connection name, e.g. crm-eu")
    bootstrap.add_argument(
        "--client-id", required=True, metavar="ID", help="the Self Client's client id (1000.…)"
    )
    bootstrap.add_argument(
        "--dc", metavar="DC", help="Zoho data center: us, eu, in, au, jp, cn, ca, sa, uk, ae"
    )
    bootstrap.add_argument(
        "--accounts-url",
        metavar="URL",
        help="accounts server instead of --dc (allow-listed; loopback only with ZOHO_ALLOW_LOCAL_ACCOUNTS=true)",
    )
    bootstrap.add_argument(
        "--code", metavar="CODE", help="grant code (else env ZOHO_GRANT_CODE, else a prompt)"
    )
    bootstrap.add_argument(
        "--scope", metavar="S", help="scopes the code was generated for (recorded if Zoho names none)"
    )
    bootstrap.add_argument("--kms-key-id", metavar="K", help="KMS key for secrets this command has to create")
    bootstrap.add_argument(
        "--replace", action="store_true", help="replace credentials that are already bootstrapped"
    )
    bootstrap.add_argument(
        "--revoke-old",
        action="store_true",
        help="with --replace: revoke the old refresh token once the new one is stored",
    )
    _common(bootstrap, json_help="print the summary as JSON")

    status = add(
        "status",
        "show each connection's DC, status, expiry, last error and credentials version",
        _STATUS_EPILOG,
    )
    status.add_argument(
        "--connection",
        action="append",
        metavar="NAME",
        help="only this connection; repeatable (default: all under the prefix, which needs ListSecrets)",
    )
    _common(status, json_help="print the documented JSON document (schema 1)")

    audit = add(
        "audit",
        "rotation history for security teams: refreshes, gaps, credential changes, access",
        _AUDIT_EPILOG,
    )
    audit.add_argument(
        "--connection",
        action="append",
        metavar="NAME",
        help="only this connection; repeatable (default: all under the prefix, which needs ListSecrets)",
    )
    audit.add_argument("--since", default="7d", metavar="WHEN", help="start of the window (default 7d)")
    audit.add_argument(
        "--log-group", metavar="G", help="the refresher's CloudWatch log group (a stack output)"
    )
    _common(audit, json_help="print the documented JSON document (schema 1)")

    refresh = add("refresh", "refresh one connection now with the refresher's own logic", _REFRESH_EPILOG)
    refresh.add_argument("--connection", required=True, metavar="NAME", help="connection name")
    refresh.add_argument("--force", action="store_true", help="refresh even if the token is still fresh")
    _common(refresh, json_help="print the result as JSON")

    revoke = add("revoke", "revoke the refresh token at Zoho and mark the connection revoked", _REVOKE_EPILOG)
    revoke.add_argument("--connection", required=True, metavar="NAME", help="connection name")
    revoke.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (it is asked only at a terminal)"
    )
    _common(revoke, json_help="print the result as JSON")

    demo = add("demo", "run the whole system locally against simulated Zoho and AWS", _DEMO_EPILOG)
    if with_demo:
        # Only when the demo runs: its module pulls in the simulators and moto, which other commands skip.
        from zoho_token import demo as demo_module

        demo_module.add_arguments(demo)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zoho-token-sync")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------------------
# Commands


def _bootstrap(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from zoho_token.bootstrap import BootstrapOptions, run_bootstrap

    return run_bootstrap(
        BootstrapOptions(
            connection=args.connection,
            client_id=args.client_id,
            dc=args.dc,
            accounts_url=args.accounts_url,
            code=args.code,
            scope=args.scope,
            prefix=args.prefix,
            region=args.region,
            kms_key_id=args.kms_key_id,
            replace=args.replace,
            revoke_old=args.revoke_old,
        ),
        out,
        env,
    )


def _status(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from zoho_token.status import StatusOptions, run_status

    return run_status(
        StatusOptions(connections=tuple(args.connection or ()), prefix=args.prefix, region=args.region),
        out,
        env,
    )


def _audit(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from zoho_token.audit import AuditOptions, run_audit

    return run_audit(
        AuditOptions(
            connections=tuple(args.connection or ()),
            since=args.since,
            log_group=args.log_group,
            prefix=args.prefix,
            region=args.region,
        ),
        out,
        env,
    )


def _revoke(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from zoho_token.bootstrap import RevokeOptions, run_revoke

    return run_revoke(
        RevokeOptions(connection=args.connection, yes=args.yes, prefix=args.prefix, region=args.region),
        out,
        env,
    )


def _demo(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from zoho_token import demo

    return demo.run(args)


_REFRESH_HINTS: Final = {
    "revoked": "Run 'zoho-token bootstrap --connection {name} --replace' with a new grant code.",
    "misconfigured": "Fix the credentials (usually: bootstrap again with --replace), then refresh.",
    "pending": "Run 'zoho-token bootstrap --connection {name}' first.",
    "failed": "The last good token is kept; the refresher retries on its schedule, or run this again later.",
    "skipped": "Nothing was sent to Zoho; try again after the time given.",
}


def _refresh(args: argparse.Namespace, out: Output, env: Mapping[str, str]) -> int:
    from lambda_refresh.models import Outcome, fingerprint, validate_connection_name
    from lambda_refresh.refresh import Refresher, Settings
    from lambda_refresh.store import SecretStore, StoreError
    from zoho_token.console import (
        allow_local_accounts,
        aws_session,
        caller_arn,
        human_duration,
        iso,
        resolve_prefix,
        usage_error,
        utc_now,
    )

    try:
        name = validate_connection_name(args.connection)
    except ValueError as err:
        raise usage_error(str(err)) from None
    prefix = resolve_prefix(args.prefix, env)
    settings = Settings(connections=(name,), prefix=prefix, allow_local_accounts=allow_local_accounts(env))
    aws = aws_session(args.region, env)
    with out.spinner(f"Refreshing {name}…"):
        caller_arn(aws)  # clear messages for missing credentials or region before the refresher runs
        store = SecretStore(aws.secretsmanager(), prefix=prefix)
        # No audit callback: the CLI's writes are recorded by the secret's versions, which audit reads.
        result = Refresher(settings, store).refresh_connection(name, force=args.force)
    fingerprint_value: str | None = None
    if result.outcome in (Outcome.REFRESHED, Outcome.FRESH):
        try:
            state = store.read_access_token(name).value
            fingerprint_value = fingerprint(state.access_token) if state.access_token else None
        except (StoreError, ValueError):
            fingerprint_value = None
    ok = result.outcome in (Outcome.REFRESHED, Outcome.FRESH)
    if out.json_mode:
        out.print_json(
            {
                "schema": 1,
                **result.to_json(),
                "status": result.status.value if result.status else None,
                "token_fingerprint": fingerprint_value,
            }
        )
    elif result.outcome is Outcome.REFRESHED and result.expires_at is not None:
        left = human_duration((result.expires_at - utc_now()).total_seconds())
        out.result(
            f"{name}: refreshed; token {fingerprint_value} expires {iso(result.expires_at)} (in {left})"
        )
    elif result.outcome is Outcome.FRESH:
        expiry = iso(result.expires_at) or "-"
        out.result(
            f"{name}: still fresh (token {fingerprint_value}, expires {expiry}); nothing sent to Zoho. Use --force to refresh anyway."
        )
    if ok:
        return EXIT_OK
    error = result.error
    detail = f"{error.code}: {error.message}" if error else "no details"
    hint = _REFRESH_HINTS.get(result.outcome.value, "").format(name=name)
    out.error(f"{name}: {result.outcome.value} ({detail}) {hint}".rstrip())
    return EXIT_FAILURE


_HANDLERS: Final[Mapping[str, Callable[[argparse.Namespace, Output, Mapping[str, str]], int]]] = {
    "bootstrap": _bootstrap,
    "status": _status,
    "audit": _audit,
    "refresh": _refresh,
    "revoke": _revoke,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    out = Output()
    refused = refused_secret_option(arguments)
    if refused is not None:
        out.error(_refusal_message(refused))
        return EXIT_USAGE
    parser = build_parser(with_demo="demo" in arguments)
    try:
        args, extras = parser.parse_known_args(arguments)
    except _UsageError as err:
        out.error(err.message)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    if extras:
        command = f"zoho-token {args.command}" if args.command else "zoho-token"
        out.error(
            f"unrecognised option(s) or argument(s) (not shown: they may contain secrets); see {command} --help"
        )
        return EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    out = Output(quiet=bool(getattr(args, "quiet", False)), json_mode=bool(getattr(args, "json", False)))
    try:
        return _HANDLERS[args.command](args, out, os.environ)
    except CliError as err:
        out.error(err.message)
        return err.exit_code
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - last line of defence: never print a traceback's values
        frames = traceback.extract_tb(err.__traceback__)
        where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
        out.error(
            f"unexpected {type(err).__name__}{where}; details are not shown because they could include "
            "secret values. Please report it with the command you ran (without secrets)."
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
