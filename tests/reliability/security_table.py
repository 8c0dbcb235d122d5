"""What the reliability suite expects, as data, and the SECURITY.md table rendered from it.

The parametrized tests in this folder take their cases and expected outcomes from the tuples below, and
``SECURITY.md`` carries :func:`render` between the ``fault-table`` markers. A test compares the two, so
changing an expectation without regenerating the document fails the suite::

    python -m tests.reliability.security_table            # print the table
    python -m tests.reliability.security_table --check    # exit 1 if SECURITY.md is stale
    python -m tests.reliability.security_table --write    # rewrite the block in SECURITY.md

Standard library only: importing this module starts no server and touches no AWS client.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

START_MARKER: Final = "<!-- fault-table:start -->"
END_MARKER: Final = "<!-- fault-table:end -->"
SECURITY_MD: Final = Path(__file__).resolve().parents[2] / "SECURITY.md"

# ---------------------------------------------------------------------------------------------------------
# Known product bugs are recorded as ``bug=`` on a case: the reason of a strict xfail test, shown in
# SECURITY.md. Fixing one makes its test XPASS (and fail), so whoever fixes it removes the entry and
# regenerates SECURITY.md. None are open.

# ---------------------------------------------------------------------------------------------------------
# Fault matrix: Zoho faults (zoho_token.simulator.Fault values) x phases

PHASES: Final = {
    "first": "first refresh of a pending connection",
    "routine": "scheduled refresh, 14 min left (within the 15-min margin)",
    "forced": 'forced refresh (`{"force": true}`) of a fresh token',
}

NEXT_TICK: Final = "next_tick"
AFTER_BACKOFF: Final = "after_backoff"
NEW_CREDENTIALS: Final = "new_credentials"
NOTHING_TO_RECOVER: Final = "none"

_RECOVERY_TEXT: Final = {
    NEXT_TICK: "a repeat tick with the fault still on calls again and writes nothing new (routine phase); "
    "the first healthy tick refreshes",
    AFTER_BACKOFF: "ticks (scheduled or forced) inside the 10-min back-off send nothing; refreshed at +11 min",
    NEW_CREDENTIALS: "parked: no Zoho call (scheduled or forced) until the credentials secret gets a new "
    "version, then refreshed; ConnectionsNeedingAction >= 1 meanwhile",
    NOTHING_TO_RECOVER: "accepted, lifetime clamped to 1 h",
}


@dataclass(frozen=True)
class ZohoFaultCase:
    fault: str
    answer: str
    error_class: str
    outcome: str
    status: str
    error_code: str | None
    calls_per_tick: int
    recovery: str

    @property
    def needs_action(self) -> bool:
        return self.status in ("revoked", "misconfigured")


ZOHO_FAULTS: Final = (
    ZohoFaultCase(
        "http_500", "HTTP 500, text body", "transient", "failed", "failing", "zoho_unavailable", 2, NEXT_TICK
    ),
    ZohoFaultCase(
        "html_503",
        "HTTP 503, HTML maintenance page",
        "transient",
        "failed",
        "failing",
        "zoho_unavailable",
        2,
        NEXT_TICK,
    ),
    ZohoFaultCase(
        "timeout",
        "no answer within the read timeout",
        "transient",
        "failed",
        "failing",
        "timeout",
        2,
        NEXT_TICK,
    ),
    ZohoFaultCase(
        "connection_reset", "TCP reset", "transient", "failed", "failing", "connection_error", 2, NEXT_TICK
    ),
    ZohoFaultCase(
        "malformed_json",
        "HTTP 200, truncated JSON",
        "transient",
        "failed",
        "failing",
        "malformed_response",
        2,
        NEXT_TICK,
    ),
    ZohoFaultCase(
        "rate_limit",
        "HTTP 200, `Access Denied` (too many requests)",
        "rate_limited",
        "failed",
        "failing",
        "rate_limited",
        1,
        AFTER_BACKOFF,
    ),
    ZohoFaultCase(
        "rate_limit_400",
        "HTTP 400, `Access Denied` (too many requests)",
        "rate_limited",
        "failed",
        "failing",
        "rate_limited",
        1,
        AFTER_BACKOFF,
    ),
    ZohoFaultCase(
        "missing_access_token",
        "HTTP 200 without `access_token`",
        "transient",
        "failed",
        "failing",
        "malformed_response",
        2,
        NEXT_TICK,
    ),
    ZohoFaultCase(
        "absurd_expires_in",
        "HTTP 200, `expires_in` 10^12",
        "none",
        "refreshed",
        "ok",
        None,
        1,
        NOTHING_TO_RECOVER,
    ),
    ZohoFaultCase(
        "unknown_error",
        '`{"error":"something_new"}`',
        "transient",
        "failed",
        "failing",
        "unknown_error",
        2,
        NEXT_TICK,
    ),
    ZohoFaultCase(
        "invalid_client",
        '`{"error":"invalid_client"}`',
        "misconfigured",
        "misconfigured",
        "misconfigured",
        "invalid_client",
        1,
        NEW_CREDENTIALS,
    ),
    ZohoFaultCase(
        "invalid_code",
        '`{"error":"invalid_code"}`',
        "revoked",
        "revoked",
        "revoked",
        "invalid_code",
        1,
        NEW_CREDENTIALS,
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Fault matrix: AWS faults, injected with a before-call hook on the refresher's own boto3 client


@dataclass(frozen=True)
class AwsFaultCase:
    id: str
    operation: str  # GetSecretValue | PutSecretValue
    secret: str  # access-token | credentials
    aws_code: str
    http_status: int
    message: str
    zoho_fault: str | None  # a Zoho fault served in the same tick, if any
    outcome: str
    stored: str  # "unchanged", or the status written
    error_code: str  # the result's error code
    zoho_calls: int
    bug: str | None = None

    @property
    def where(self) -> str:
        if self.operation == "GetSecretValue":
            return f"GetSecretValue `{self.secret}`"
        return "PutSecretValue of the status" if self.zoho_fault else "PutSecretValue of the new token"


_READ_CODES: Final = (
    ("ThrottlingException", 400, "Rate exceeded"),
    ("InternalServiceError", 500, "An error occurred on the server side."),
    ("AccessDeniedException", 400, "Access to KMS is not allowed"),
    (
        "DecryptionFailure",
        400,
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
    ),
)
_WRITE_CODES: Final = (
    ("ThrottlingException", 400, "Rate exceeded"),
    ("InternalServiceError", 500, "An error occurred on the server side."),
    ("AccessDeniedException", 400, "Access to KMS is not allowed"),
    (
        "EncryptionFailure",
        400,
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key.",
    ),
)

AWS_FAULTS: Final = (
    *(
        AwsFaultCase(
            f"read-token-{code}",
            "GetSecretValue",
            "access-token",
            code,
            status,
            msg,
            None,
            "failed",
            "unchanged",
            code,
            0,
        )
        for code, status, msg in _READ_CODES
    ),
    *(
        AwsFaultCase(
            f"read-credentials-{code}",
            "GetSecretValue",
            "credentials",
            code,
            status,
            msg,
            None,
            "failed",
            "failing",
            "aws_error",
            0,
        )
        for code, status, msg in _READ_CODES
    ),
    *(
        AwsFaultCase(
            f"write-token-{code}",
            "PutSecretValue",
            "access-token",
            code,
            status,
            msg,
            None,
            "failed",
            "unchanged",
            code,
            1,
        )
        for code, status, msg in _WRITE_CODES
    ),
    AwsFaultCase(
        "write-status-ThrottlingException",
        "PutSecretValue",
        "access-token",
        "ThrottlingException",
        400,
        "Rate exceeded",
        "html_503",
        "failed",
        "unchanged",
        "zoho_unavailable",
        2,
    ),
)

#: Phases in which the process is killed between Zoho's answer and the PutSecretValue.
PROCESS_DEATH_PHASES: Final = ("first", "routine")

# ---------------------------------------------------------------------------------------------------------
# Races


@dataclass(frozen=True)
class RaceCase:
    id: str
    contenders: str
    iterations: int
    asserted: str
    bug: str | None = None


RACES: Final = (
    RaceCase(
        "cas-same-base",
        "2-4 SecretStore writers (own boto3 clients) from the same base version, threads + barrier",
        10,
        "exactly one write succeeds, the others get ConcurrentWriteError; the winner's value is current",
    ),
    RaceCase(
        "two-invocations-and-cli",
        "2 handler invocations + a separately built Refresher (what `zoho-token refresh` runs), due token",
        10,
        "each outcome refreshed or fresh, at least one refreshed, one new version only, <= 3 Zoho calls; "
        "stored token accepted by the API, status ok, credentials_version = current credentials version",
    ),
    RaceCase(
        "bootstrap-vs-refresh-random",
        "`run_bootstrap(--replace)` (zoho_token.bootstrap) + a scheduled tick, released together",
        6,
        "stored token accepted by the API and made from the new credentials: credentials_version = the "
        "credentials secret's current VersionId right after the race (no extra tick needed)",
    ),
    RaceCase(
        "bootstrap-vs-refresh-interleavings",
        "refresh paused by botocore hooks / bootstrap paused on its grant-code prompt at 3 points",
        3,
        "same as above for: refresh writes first; bootstrap writes while the refresh waits to write; "
        "bootstrap completes between the refresh's credentials read and its Zoho call",
    ),
    RaceCase(
        "bootstrap-revoke-old-vs-refresh",
        "refresh reads the old credentials, then `bootstrap --replace --revoke-old` completes",
        1,
        "the stored state stays ok and the refresher does not report the connection as revoked",
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Hostile input (hypothesis, derandomized)


@dataclass(frozen=True)
class HostileInput:
    id: str
    target: str
    generated: str
    expected: str
    examples: int
    bug: str | None = None


HOSTILE_INPUTS: Final = (
    HostileInput(
        "zoho-body",
        "`zoho.parse_token_response`",
        "any text (incl. token-shaped strings) or JSON objects with any field types, HTTP 100-599, "
        "both grants",
        "a TokenGrant (lifetime 1-3600 s) or a ZohoError; no token-shaped substring of the body in the message",
        400,
    ),
    HostileInput(
        "zoho-body-huge-int",
        "`zoho.parse_token_response`",
        "`expires_in` / `expires_in_sec` as a 400-digit JSON integer",
        "a ZohoError (malformed_response) or a clamped TokenGrant",
        1,
    ),
    HostileInput(
        "event-parse",
        "`RefreshRequest.from_event`",
        "any JSON value; objects with `connection`/`force`/`invalid_token_sha256` of any type",
        "a RefreshRequest or InvalidEventError",
        400,
    ),
    HostileInput(
        "event-handler",
        "the real handler",
        "the same events",
        'never raises; invalid -> `{"results": [], "error": {"code": "invalid_event", ...}}`; valid -> one '
        "result per connection asked for",
        60,
    ),
    HostileInput(
        "connection-name",
        "`validate_connection_name`",
        "any text, any JSON type",
        "accepted exactly when it matches `^[a-z0-9][a-z0-9-]{0,62}$`; otherwise ValueError stating the rule",
        300,
    ),
    HostileInput(
        "connection-name-echo",
        "handler answer + CLI usage error",
        "a token-shaped string as the connection name",
        "rejected without quoting the value",
        1,
    ),
    HostileInput(
        "env",
        "`Settings.from_env`",
        "random values (text, digits, JSON, whitespace) for every variable the function reads",
        "a valid Settings or ConfigurationError naming the variable",
        300,
    ),
    HostileInput(
        "env-prefix",
        "`Settings.from_env`",
        "ZOHO_SECRET_PREFIX with characters outside Secrets Manager's name set (`☃`, `*`, `?`)",
        "ConfigurationError naming ZOHO_SECRET_PREFIX",
        3,
    ),
    HostileInput(
        "env-deep-json",
        "`Settings.from_env`",
        "ZOHO_HEALTH_PROBES nested 100,000 deep",
        "ConfigurationError",
        1,
    ),
    HostileInput(
        "credentials-secret",
        "credentials secret -> real handler",
        "missing/extra fields, wrong types, huge strings, NaN/Infinity, deep nesting, unknown schema, "
        "non-UTF-8 bytes (surrogateescape), non-JSON",
        "outcome misconfigured (pending for a placeholder-shaped value) or refreshed when the value is "
        "still valid; never an exception; no secret in the answer or output",
        50,
    ),
    HostileInput(
        "access-token-secret",
        "access-token secret -> real handler",
        "the same families of damage",
        "repaired by a successful refresh (status ok, a token the API accepts), unknown fields kept",
        50,
    ),
    HostileInput(
        "secret-time-overflow",
        "both secrets -> real handler",
        "a time field like `0001-01-01T00:00:00+01:00`",
        "access-token secret repaired; credentials secret reported misconfigured",
        2,
    ),
    HostileInput(
        "cli-argv",
        "`zoho_token.cli.main(argv)` in-process",
        "argv from the commands, their options, random text and secret-shaped values (as positionals, "
        "`--client-secret=`, `--token=`, `--code=`, `--client-id=`, unknown `--<value>`)",
        "exit code 0, 1 or 2; no secret-shaped argument echoed on stdout/stderr",
        60,
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Soak


@dataclass(frozen=True)
class SoakPlan:
    days: int
    connections: int
    tick_minutes: int
    seed: int
    max_calls_ratio: float
    memory_bound_mb: float


SOAK: Final = SoakPlan(
    days=7, connections=15, tick_minutes=10, seed=1234, max_calls_ratio=1.35, memory_bound_mb=5.0
)
SOAK_FAULTS: Final = (
    ("outage", "HTML 503 for every token request during windows of 10-40 min (about one a day)"),
    ("rate limit", "`Access Denied` (HTTP 200 or 400) for the next 1-3 token requests (about 2 a day)"),
    ("malformed JSON", "truncated JSON for the next 1-2 token requests (about one a day)"),
    (
        "timeout",
        "no answer within the 1 s read timeout, next request (4 in the week: they cost real seconds)",
    ),
)

# ---------------------------------------------------------------------------------------------------------
# Rendering


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def _bug_note(bug: str | None) -> str:
    return "verified" if bug is None else "**known bug** (strict xfail): " + bug.removeprefix("BUG: ")


def render() -> str:
    """The markdown placed between the markers in SECURITY.md."""
    out: list[str] = [
        "_Generated by `python -m tests.reliability.security_table --write` from the expectations the tests "
        "in `tests/reliability/` assert; `test_security_md_table_is_current` fails when this block is stale._",
        "",
        f"### Zoho faults x {len(PHASES)} phases ({len(ZOHO_FAULTS) * len(PHASES)} cases)",
        "",
        "Phases: " + "; ".join(f"**{k}**: {v}" for k, v in PHASES.items()) + ".",
        "Each case asserts afterwards: one result per connection; no exception; the stored token is the last "
        "good one or a newer good one (the API accepts it); status and error code; Zoho calls counted at "
        "the simulator; the EMF metric ConnectionsNeedingAction; and the recovery below.",
        "",
    ]
    out += _table(
        (
            "fault",
            "Zoho answers",
            "class",
            "outcome",
            "stored status",
            "error code",
            "Zoho calls/tick",
            "afterwards",
        ),
        [
            (
                f"`{c.fault}`",
                c.answer,
                c.error_class,
                c.outcome,
                c.status,
                f"`{c.error_code}`" if c.error_code else "-",
                c.calls_per_tick,
                _RECOVERY_TEXT[c.recovery],
            )
            for c in ZOHO_FAULTS
        ],
    )
    out += [
        "",
        f"### AWS faults ({len(AWS_FAULTS)} cases, routine phase) and process death ({len(PROCESS_DEATH_PHASES)} cases)",
        "",
        "Injected on botocore's real call path: a `before-call` hook on the refresher's own client answers "
        "with the AWS error (retries exhausted). Every case: the old token stays stored and accepted, no "
        "exception leaves the handler, and the next tick without the fault refreshes.",
        "",
    ]
    out += _table(
        (
            "where",
            "AWS error",
            "Zoho in the same tick",
            "outcome",
            "stored",
            "error code",
            "Zoho calls",
            "status",
        ),
        [
            (
                c.where,
                f"`{c.aws_code}` (HTTP {c.http_status})",
                c.zoho_fault or "ok",
                c.outcome,
                c.stored,
                f"`{c.error_code}`",
                c.zoho_calls,
                _bug_note(c.bug),
            )
            for c in AWS_FAULTS
        ],
    )
    out += [
        "",
        "Process death: the PutSecretValue after Zoho's answer raises a `BaseException` (the process dies "
        f"with the token minted but not stored), phases {', '.join(PROCESS_DEATH_PHASES)}: the exception "
        "leaves the handler as a crash would, nothing is written, the previous token is still stored and "
        "valid, and a new process (`service.reset`) refreshes on its next tick.",
        "",
        "### Races",
        "",
    ]
    out += _table(
        ("race", "contenders", "iterations", "asserted", "status"),
        [(c.id, c.contenders, c.iterations, c.asserted, _bug_note(c.bug)) for c in RACES],
    )
    out += ["", "### Hostile input (hypothesis, derandomized)", ""]
    out += _table(
        ("input", "into", "generated", "expected", "examples", "status"),
        [(c.id, c.target, c.generated, c.expected, c.examples, _bug_note(c.bug)) for c in HOSTILE_INPUTS],
    )
    out += [
        "",
        "Every example also checks that no registered secret value (the leak guard's list) appears in the "
        "answer or the captured output. Generated examples per run: "
        f"{sum(c.examples for c in HOSTILE_INPUTS if c.bug is None)} (the properties' `max_examples`), plus "
        "a few explicit `@example` cases; the known-bug rows are single deterministic tests.",
        "",
        "### Soak",
        "",
        f"{SOAK.days} simulated days x {SOAK.connections} connections, the real handler every "
        f"{SOAK.tick_minutes} simulated minutes ({SOAK.days * 24 * 60 // SOAK.tick_minutes} ticks), faults "
        f"drawn from `random.Random({SOAK.seed})`:",
        "",
    ]
    out += _table(("fault", "injected"), [(name, text) for name, text in SOAK_FAULTS])
    out += [
        "",
        "Asserted: zero expired-token minutes outside a fault window (a window opens when a connection's "
        "refresh fails or is skipped and closes at its next successful refresh); zero tokens lost (each "
        "tick's stored expiry is the previous one or a later one, and daily every stored token is the one "
        f"the API accepts); Zoho refresh calls <= {SOAK.max_calls_ratio} x 24 per connection per day; "
        f"memory allocated in the last 6 h of day {SOAK.days} and still alive at its end <= the same figure "
        f"for day 1 + {SOAK.memory_bound_mb:g} MB (tracemalloc), for the whole process and for the function's "
        "share; "
        "no secret-shaped string in the output.",
    ]
    return "\n".join(out) + "\n"


def current_block(text: str) -> str | None:
    """The text between the markers in ``text`` (None when the markers are missing)."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        return None
    return text[start + len(START_MARKER) : end].strip("\n") + "\n"


def replace_block(text: str, block: str) -> str:
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"SECURITY.md has no {START_MARKER} ... {END_MARKER} block")
    return text[: start + len(START_MARKER)] + "\n" + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.security_table", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the block in SECURITY.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if SECURITY.md's block is stale")
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        SECURITY_MD.write_text(
            replace_block(SECURITY_MD.read_text(encoding="utf-8"), table), encoding="utf-8"
        )
        print(f"updated {SECURITY_MD}")
        return 0
    if args.check:
        if current_block(SECURITY_MD.read_text(encoding="utf-8")) != table:
            print(f"{SECURITY_MD} is stale: run python -m tests.reliability.security_table --write")
            return 1
        return 0
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
