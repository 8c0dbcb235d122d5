"""Plumbing shared by the ``zoho-token`` commands: output, prompts, errors and AWS clients.

Every command writes its result to stdout (a table, a summary or, with ``--json``, one JSON document)
and everything else (progress, notes, warnings, errors) to stderr, so ``--json`` output can be piped.
Messages are printed with rich markup disabled: text from Zoho or AWS may contain brackets.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sts import STSClient
    from rich.console import Console

EXIT_OK: Final = 0
#: A Zoho or AWS failure; the message says what to do.
EXIT_FAILURE: Final = 1
#: Bad usage or input; nothing was sent anywhere.
EXIT_USAGE: Final = 2

DEFAULT_PREFIX: Final = "zoho/"
# Secrets Manager names allow these characters; a prefix is the start of such a name.
_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9/_+=.@-]{1,300}")


class CliError(Exception):
    """Ends a command with a message for the operator (never containing a secret) and an exit code."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def usage_error(message: str) -> CliError:
    return CliError(message, exit_code=EXIT_USAGE)


# ---------------------------------------------------------------------------------------------------------
# Output


def _console(file: TextIO) -> Console:
    from rich.console import Console

    is_tty = file.isatty()
    # Piped output keeps whole table rows on one line rather than rich's 80-column default.
    width = None if is_tty or os.environ.get("COLUMNS") else 160
    return Console(file=file, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False)


@dataclass
class Output:
    """Where a command writes. ``quiet`` drops progress and notes; warnings and errors always print."""

    quiet: bool = False
    json_mode: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    _out: Console | None = field(default=None, init=False, repr=False)
    _err: Console | None = field(default=None, init=False, repr=False)

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = _console(self.stdout)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _console(self.stderr)
        return self._err

    def note(self, message: str) -> None:
        """Progress and context, on stderr; dropped with ``--quiet``."""
        if not self.quiet:
            self.err.print(message, style="dim", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", style="yellow", soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(f"zoho-token: {message}", style="bold red", soft_wrap=True)

    def result(self, message: str = "", *, style: str | None = None) -> None:
        """A line of the human result on stdout (nothing in ``--json`` mode or with ``--quiet``)."""
        if not self.json_mode and not self.quiet:
            self.out.print(message, style=style, soft_wrap=True)

    def print_json(self, document: Mapping[str, Any]) -> None:
        # Plain write, not rich: the document must reach pipes byte-exact and unwrapped.
        self.stdout.write(json.dumps(document, indent=2) + "\n")
        self.stdout.flush()

    @contextlib.contextmanager
    def spinner(self, message: str) -> Iterator[None]:
        """A spinner on stderr while waiting on the network; only on a terminal and without --quiet."""
        if self.quiet or not self.stderr.isatty():
            yield
            return
        with self.err.status(message):
            yield


# ---------------------------------------------------------------------------------------------------------
# Prompts


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _read_stdin_line(what: str, how: str) -> str:
    # Without a terminal (scripts, tests) answers come from stdin, one per line, in prompt order.
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise usage_error(f"no {what}: stdin ended and no terminal is attached; {how}")
    return line.rstrip("\r\n")


def prompt_secret(prompt: str, *, what: str, how: str) -> str:
    """Hidden input on a terminal (getpass); otherwise the next line of stdin. Never echoed."""
    if _stdin_is_tty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            raise usage_error(f"no {what} entered; {how}") from None
    sys.stderr.write(prompt + "(reading from stdin)\n")
    sys.stderr.flush()
    return _read_stdin_line(what, how)


def prompt_line(prompt: str, *, what: str, how: str) -> str:
    """Visible input on a terminal; otherwise the next line of stdin. The prompt goes to stderr."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    if _stdin_is_tty():
        try:
            return input()
        except EOFError:
            raise usage_error(f"no {what} entered; {how}") from None
    sys.stderr.write("(reading from stdin)\n")
    sys.stderr.flush()
    return _read_stdin_line(what, how)


def stdin_is_interactive() -> bool:
    return _stdin_is_tty()


# ---------------------------------------------------------------------------------------------------------
# Environment


def resolve_prefix(value: str | None, env: Mapping[str, str]) -> str:
    prefix = value if value is not None else (env.get("ZOHO_SECRET_PREFIX") or DEFAULT_PREFIX)
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise usage_error(
            "the secret prefix (--prefix or ZOHO_SECRET_PREFIX) may use only letters, digits and "
            "/_+=.@- (up to 300 characters), e.g. zoho/"
        )
    return prefix


def allow_local_accounts(env: Mapping[str, str]) -> bool:
    raw = env.get("ZOHO_ALLOW_LOCAL_ACCOUNTS", "").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("", "false", "0", "no"):
        return False
    raise usage_error("ZOHO_ALLOW_LOCAL_ACCOUNTS must be true or false")


# ---------------------------------------------------------------------------------------------------------
# Time


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    from lambda_refresh.models import format_time

    return format_time(moment) if moment is not None else None


def human_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h`` — for tables, not for parsing."""
    total = round(abs(seconds))
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def short_time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------
# AWS


@dataclass
class Aws:
    """One boto3 session for a command, with the region resolved the way the docs describe."""

    session: boto3.session.Session
    region: str

    def _config(self) -> Any:
        from botocore.config import Config

        # Operator commands should fail within seconds, not botocore's minute-long defaults.
        return Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})

    def secretsmanager(self) -> SecretsManagerClient:
        return self.session.client("secretsmanager", config=self._config())

    def sts(self) -> STSClient:
        return self.session.client("sts", config=self._config())

    def kms(self) -> KMSClient:
        return self.session.client("kms", config=self._config())

    def logs(self) -> CloudWatchLogsClient:
        return self.session.client("logs", config=self._config())


def aws_session(region: str | None, env: Mapping[str, str]) -> Aws:
    """A session for ``--region``, else ``AWS_REGION``/``AWS_DEFAULT_REGION``/the profile's region."""
    import boto3

    chosen = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    try:
        session = boto3.session.Session(region_name=chosen)
    except Exception as err:  # noqa: BLE001 - botocore raises many config errors; only the class is shown
        raise CliError(
            f"could not set up AWS ({type(err).__name__}); check AWS_PROFILE and your AWS config files"
        ) from None
    resolved = session.region_name
    if not resolved:
        raise usage_error(
            "no AWS region: pass --region, or set AWS_REGION (the region the stack is deployed in)"
        )
    return Aws(session, resolved)


def aws_failure(err: BaseException, action: str) -> CliError:
    """Turn a botocore exception into a message that says what to do; never includes request data."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return CliError(
            f"{action}: no AWS credentials found. Log in (e.g. 'aws sso login --profile P' and set "
            "AWS_PROFILE=P) or export credentials, then run this again."
        )
    if isinstance(err, NoRegionError):
        return usage_error(f"{action}: no AWS region; pass --region or set AWS_REGION")
    if isinstance(err, EndpointConnectionError | BotoConnectionError):
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        where = f" at {endpoint} (AWS_ENDPOINT_URL)" if endpoint else ""
        return CliError(
            f"{action}: could not reach AWS{where} ({type(err).__name__}). Check your network, proxy "
            "(HTTPS_PROXY) and region, then run this again."
        )
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", "Unknown"))
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return CliError(f"{action}: your AWS session has expired ({code}); log in again.")
        if code in ("AccessDenied", "AccessDeniedException", "UnrecognizedClientException"):
            return CliError(
                f"{action}: AWS refused it ({code}). Your identity needs the operator grant "
                "(the construct's grant_operate) for these secrets; ask the stack's owner."
            )
        return CliError(f"{action}: AWS answered {code}.")
    return CliError(f"{action}: failed ({type(err).__name__}).")


def caller_arn(aws: Aws) -> str:
    """STS GetCallerIdentity: proves region and credentials work, and names who is acting."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return aws.sts().get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as err:
        raise aws_failure(err, "checking your AWS identity (sts get-caller-identity)") from None
