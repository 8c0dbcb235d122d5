"""Hostile input, property-based (hypothesis, derandomized so CI sees the same examples every run).

Targets: Zoho's token answers, Lambda events (parsed and through the real handler), connection names,
the function's environment, both secrets' JSON written into moto and then the real handler, and the CLI's
argv. Properties: never an unhandled exception, always the documented outcome, never a secret value in an
answer, message or captured output. Example counts come from ``security_table.HOSTILE_INPUTS``.
"""

from __future__ import annotations

import io
import json
import math
import re
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from lambda_refresh.models import (
    AccessTokenState,
    InvalidEventError,
    RefreshRequest,
    Status,
    validate_connection_name,
)
from lambda_refresh.refresh import ConfigurationError, Settings
from lambda_refresh.zoho import TokenGrant, ZohoError, parse_token_response
from tests import leakguard
from tests.reliability.conftest import (
    CONN,
    CREDENTIALS_SECRET,
    TOKEN_SECRET,
    LambdaHarness,
    only_result,
    read_credentials,
)
from tests.reliability.security_table import (
    HOSTILE_INPUTS,
)
from tests.support import api_accepts, read_state, seed_connection

# The handler answers an invalid event (or a process dies) before any metric exists: Powertools warns.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

EXAMPLES = {h.id: h.examples for h in HOSTILE_INPUTS}
NOW = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)
HEX = "0123456789abcdef"
#: Substrings that look like a Zoho token or a secret: never repeated in a message.
TOKEN_SHAPED = re.compile(r"1000\.[0-9a-fA-F]{8,}|[0-9a-fA-F]{24,}")
#: Fake secrets planted in hostile values; the leak guard fails any test that prints them.
FAKE_SECRETS = (
    "1000.fe11a5ec0ffee0000000000000000001.fe11a5ec0ffee0000000000000000002",
    "hostile-input-client-secret-5d1c0ffee",
)
leakguard.register(*FAKE_SECRETS)


def fuzz(name: str, **extra: Any) -> Callable[[Any], Any]:
    """hypothesis settings for one HOSTILE_INPUTS entry: fixed example count, derandomized, no database."""
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        **extra,
    )


_T = TypeVar("_T")
_E = TypeVar("_E", bound=BaseException)


def _outcome(call: Callable[[], _T], expected: type[_E]) -> _T | _E:
    """The call's result, or the expected exception it raised (anything else propagates)."""
    try:
        return call()
    except expected as err:
        return err


def assert_no_leak(*texts: str) -> None:
    joined = "\n".join(texts)
    assert not leakguard.find_leaks(joined), "a registered secret value appeared in the output"


# ---------------------------------------------------------------------------------------------------------
# Strategies

tokens = st.builds(
    lambda a, b: f"1000.{a}.{b}",
    st.text(HEX, min_size=32, max_size=32),
    st.text(HEX, min_size=32, max_size=32),
)
secretish = tokens | st.text(HEX, min_size=42, max_size=42) | st.sampled_from(FAKE_SECRETS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | tokens
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
TOKEN_KEYS = (
    "access_token",
    "expires_in",
    "expires_in_sec",
    "error",
    "error_description",
    "api_domain",
    "token_type",
    "scope",
    "refresh_token",
    "status",
)
numberish = (
    st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{0,4})?(e[0-9]{1,3})?", fullmatch=True)
    | st.sampled_from(["nan", "inf", "-inf", "1e999", "3600", "3600000", ""])
)
token_bodies = st.dictionaries(
    st.sampled_from(TOKEN_KEYS) | st.text(max_size=10),
    json_values | numberish | st.sampled_from(["Access Denied", "invalid_code", "invalid_client"]),
    max_size=7,
)


def _dumps(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity go out as the non-standard literals Python accepts


plausible_bodies = st.fixed_dictionaries(
    {"access_token": tokens | st.text(max_size=20)},
    optional={
        "expires_in": numberish,
        "expires_in_sec": numberish,
        "api_domain": json_values,
        "token_type": json_values,
        "scope": json_values,
        "refresh_token": tokens | json_values,
    },
)
grant_like = st.fixed_dictionaries(
    {"access_token": tokens, "expires_in": st.integers(-10, 10**8) | st.floats(0, 1e9) | numberish},
    optional={
        "expires_in_sec": numberish,
        "api_domain": json_values,
        "refresh_token": tokens,
        "scope": json_values,
    },
)
zoho_texts = st.one_of(
    grant_like.map(_dumps),
    grant_like.map(_dumps),
    plausible_bodies.map(_dumps),
    token_bodies.map(_dumps),
    json_values.map(_dumps),
    st.text(max_size=300),
    tokens,
    st.builds(lambda t: f"<html><body>maintenance {t}</body></html>", tokens),
    st.builds(lambda t: json.dumps({"error": t}), tokens | st.text(max_size=60)),
    st.builds(lambda t: json.dumps({"error": "x", "error_description": t}), tokens),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
)


# ---------------------------------------------------------------------------------------------------------
# Zoho response bodies


@fuzz("zoho-body")
@given(
    status=st.sampled_from([200, 200, 200, 200, 200, 400, 500, 503]) | st.integers(100, 599),
    text=zoho_texts,
    grant=st.sampled_from(["refresh_token", "authorization_code"]),
)
@example(status=200, text='{"access_token":"1000.a","expires_in":NaN}', grant="refresh_token")
@example(status=200, text='{"access_token":"1000.a","expires_in":"1e999"}', grant="refresh_token")
@example(
    status=200,
    text='{"access_token":"1000.a","expires_in":3600000,"expires_in_sec":3600}',
    grant="refresh_token",
)
@example(status=200, text="[" * 100_000, grant="refresh_token")
@example(status=200, text='{"error":"' + FAKE_SECRETS[0] + '"}', grant="refresh_token")
def test_zoho_answers_give_a_grant_or_a_zoho_error(status: int, text: str, grant: str) -> None:
    outcome = _outcome(lambda: parse_token_response(status, text, grant=grant, now=NOW), ZohoError)
    if isinstance(outcome, ZohoError):
        tally(f"ZohoError {outcome.code}")
        assert outcome.code
        assert outcome.message == str(outcome)
        for shaped in TOKEN_SHAPED.findall(text):
            assert shaped not in outcome.message
        assert_no_leak(outcome.message)
        return
    result = outcome
    tally("TokenGrant")
    assert isinstance(result, TokenGrant)
    assert result.access_token.strip()
    assert 1 <= result.lifetime_seconds <= 3600
    assert result.expires_at == NOW + timedelta(seconds=result.lifetime_seconds)
    if grant == "refresh_token":
        assert result.refresh_token is None  # a refresh never rotates the refresh token
    assert "access_token=" not in repr(result)  # the token never reaches a repr (logs, tracebacks)
    assert "refresh_token=" not in repr(result)


@pytest.mark.parametrize("field", ["expires_in", "expires_in_sec"])
def test_a_huge_integer_lifetime_is_a_zoho_error(field: str) -> None:
    text = '{"access_token":"1000.abc","' + field + '":' + "9" * 400 + "}"
    outcome = _outcome(lambda: parse_token_response(200, text, grant="refresh_token", now=NOW), ZohoError)
    if isinstance(outcome, ZohoError):
        assert outcome.code == "malformed_response"
    else:
        assert outcome.lifetime_seconds == 3600


# ---------------------------------------------------------------------------------------------------------
# Lambda events

digests = st.text(HEX, min_size=64, max_size=64) | st.text(HEX.upper(), min_size=64, max_size=64)
event_values = json_values | digests | st.sampled_from([CONN, "other-conn", "CRM-EU", "", "-x", True, False])
events = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["connection", "force", "invalid_token_sha256"]) | st.text(max_size=8),
        event_values,
        max_size=4,
    ),
)


def _check_request(request: RefreshRequest) -> None:
    assert request.connection is None or validate_connection_name(request.connection)
    assert isinstance(request.force, bool)
    if request.invalid_token_sha256 is not None:
        assert re.fullmatch("[0-9a-f]{64}", request.invalid_token_sha256)
    if request.force or request.invalid_token_sha256:
        assert request.connection is not None


@fuzz("event-parse")
@given(event=events)
def test_events_parse_or_are_refused(event: Any) -> None:
    outcome = _outcome(lambda: RefreshRequest.from_event(event), InvalidEventError)
    if isinstance(outcome, InvalidEventError):
        assert str(outcome)
        return
    _check_request(outcome)


@pytest.fixture
def live(secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness) -> LambdaHarness:
    """One bootstrapped, refreshed connection behind the real handler."""
    seed_connection(secretsmanager, zoho, CONN)
    assert only_result(lam())["outcome"] == "refreshed"
    return lam


VALID_OUTCOMES = {"refreshed", "fresh", "failed", "revoked", "misconfigured", "pending", "skipped"}


@fuzz("event-handler")
@given(event=events)
def test_the_handler_answers_every_event(
    event: Any, live: LambdaHarness, zoho_clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    zoho_clock.advance(61)
    response = live(event)
    printed = capsys.readouterr()
    assert_no_leak(json.dumps(response), printed.out, printed.err)
    request = _outcome(lambda: RefreshRequest.from_event(event), InvalidEventError)
    if isinstance(request, InvalidEventError):
        tally("invalid event")
        assert response["results"] == []
        assert response["error"]["code"] == "invalid_event"
        assert isinstance(response["error"]["message"], str)
        return
    assert "error" not in response
    tally("outcomes " + ",".join(r["outcome"] for r in response["results"]))
    expected = [request.connection] if request.connection else [CONN]
    assert [r["connection"] for r in response["results"]] == expected
    for result in response["results"]:
        assert result["outcome"] in VALID_OUTCOMES
        assert result["error"] is None or result["error"]["code"] != "internal_error"
    if request.connection not in (None, CONN):
        assert response["results"][0]["outcome"] == "misconfigured"


# ---------------------------------------------------------------------------------------------------------
# Connection names and the environment

NAME_ALPHABET = string.ascii_lowercase + string.digits + "-"


def _is_valid_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 63
        and all(c in NAME_ALPHABET for c in value)
        and value[0] != "-"
    )


names = st.one_of(
    st.text(max_size=70),
    st.text(NAME_ALPHABET, min_size=0, max_size=70),
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
    json_values,
)


@fuzz("connection-name")
@given(name=names)
@example(name="a" * 63)
@example(name="a" * 64)
@example(name="crm-eu\n")
@example(name="crm-\uff45u")  # a fullwidth e
def test_connection_names_follow_the_rule(name: object) -> None:
    if _is_valid_name(name):
        assert validate_connection_name(name) == name
        return
    with pytest.raises(ValueError, match="1-63 characters, lowercase letters, digits and '-'") as info:
        validate_connection_name(name)
    assert len(str(info.value)) < 300


ENV_KEYS = (
    "ZOHO_CONNECTIONS",
    "ZOHO_SECRET_PREFIX",
    "REFRESH_MARGIN_SECONDS",
    "ZOHO_ALLOW_LOCAL_ACCOUNTS",
    "ZOHO_TOKEN_BUDGET",
    "REFRESH_CONCURRENCY",
    "ZOHO_HTTP_TIMEOUT_SECONDS",
    "ZOHO_HEALTH_PROBES",
)
env_values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r" ?-?[0-9]{1,6} ?", fullmatch=True),
    st.sampled_from(["true", "FALSE", "yes", "0", "", " ", "1" * 5000, "٣٠٠", "zoho/", "crm-eu, books-us,"]),
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True), max_size=3).map(",".join),
    st.dictionaries(st.sampled_from([CONN, "x"]), st.text(max_size=20) | st.just("/crm/v8/users")).map(
        json.dumps
    ),
    json_values.map(json.dumps),
)


@fuzz("env")
@given(env=st.dictionaries(st.sampled_from(ENV_KEYS), env_values, max_size=len(ENV_KEYS)))
def test_environment_gives_settings_or_a_configuration_error(env: dict[str, str]) -> None:
    result = _outcome(lambda: Settings.from_env(env), ConfigurationError)
    if isinstance(result, ConfigurationError):
        message = str(result)
        assert any(key in message for key in ENV_KEYS), message
        assert len(message) < 500
        return
    assert result.connections
    assert all(_is_valid_name(n) for n in result.connections)
    assert 60 <= result.margin_seconds <= 3000
    assert 1 <= result.mint_budget <= 10
    assert 1 <= result.concurrency <= 64
    assert 1 <= result.http.read_timeout <= 30
    assert set(result.health_probes) <= set(result.connections)


def test_deeply_nested_probes_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({"ZOHO_CONNECTIONS": CONN, "ZOHO_HEALTH_PROBES": "[" * 100_000})


#: What Secrets Manager allows in a secret name (the CLI's resolve_prefix enforces the same set).
SECRET_NAME_CHARS = set(string.ascii_letters + string.digits + "/_+=.@-")


@pytest.mark.parametrize("prefix", ["zoho/☃/", "zoho/*", "zoho/?x"])
def test_a_prefix_no_secret_name_can_have_is_a_configuration_error(prefix: str) -> None:
    outcome = _outcome(
        lambda: Settings.from_env({"ZOHO_CONNECTIONS": CONN, "ZOHO_SECRET_PREFIX": prefix}),
        ConfigurationError,
    )
    if isinstance(outcome, ConfigurationError):
        assert "ZOHO_SECRET_PREFIX" in str(outcome)
    else:
        assert set(outcome.prefix) <= SECRET_NAME_CHARS


# ---------------------------------------------------------------------------------------------------------
# Secrets written into moto, then the real handler

REQUIRED_CREDENTIALS = ("client_id", "client_secret", "refresh_token", "dc", "accounts_url")
non_strings = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
)
#: Not a usable value for a required string field.
wrong_types = non_strings | st.none() | st.sampled_from(["", "   "])
not_schema_1: st.SearchStrategy[Any] = st.sampled_from(
    [0, 2, "1", None, [], {}, float("nan"), float("inf"), "2"]
)
deep = st.integers(2, 60).map(lambda n: json.loads("[" * n + "]" * n))
garbage = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(_dumps),
    st.sampled_from(["", "{", "null", "[]", '"x"', "NaN", "{}}", '{"schema":1,', "[" * 5000]),
)
time_strings = st.builds(
    lambda d, minutes: (
        d.strftime("%Y-%m-%dT%H:%M:%S")
        + (f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    ),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(-23 * 60, 23 * 60),
)


@dataclass(frozen=True)
class CredentialsDamage:
    """What to do to the real credentials (kept apart from them, so a failing example prints no secret)."""

    kind: str
    keys: tuple[str, ...] = ()
    value: Any = None

    def apply(self, base: dict[str, Any]) -> tuple[str, set[str]]:
        """The damaged SecretString and the outcomes the contract allows for it."""
        data = dict(base)
        bad = {"misconfigured"}
        if self.kind == "garbage":
            return str(self.value), bad
        if self.kind == "drop":
            for key in self.keys:
                del data[key]
            # Without all three of these it reads as the deployment's placeholder (pending if never refreshed).
            placeholder = not {"client_id", "client_secret", "refresh_token"} & data.keys()
            return _dumps(data), ({"pending", "misconfigured"} if placeholder else bad)
        if self.kind == "extra":  # unknown fields are ignored
            data.update(self.value)
            return _dumps(data), {"refreshed"}
        (key,) = self.keys
        data[key] = self.value
        if key == "issued_at" and isinstance(self.value, str):
            try:
                datetime.fromisoformat(self.value.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:  # a valid time (with a zone) or a naive one
                return _dumps(data), {"refreshed", "misconfigured"}
        return _dumps(data), bad


CREDENTIALS_KEYS = (*REQUIRED_CREDENTIALS, "schema", "api_domain", "scope", "issued_at", "bootstrapped")


@st.composite
def credentials_damage(draw: st.DrawFn) -> CredentialsDamage:
    kind = draw(st.sampled_from(["drop", "retype", "schema", "optional", "huge", "extra", "garbage"]))
    if kind == "garbage":
        return CredentialsDamage(kind, value=draw(garbage))
    if kind == "drop":
        return CredentialsDamage(
            kind, tuple(sorted(draw(st.sets(st.sampled_from(REQUIRED_CREDENTIALS), min_size=1))))
        )
    if kind == "retype":
        return CredentialsDamage(kind, (draw(st.sampled_from(REQUIRED_CREDENTIALS)),), draw(wrong_types))
    if kind == "schema":
        return CredentialsDamage(kind, ("schema",), draw(not_schema_1))
    if kind == "optional":
        key = draw(st.sampled_from(["api_domain", "scope", "issued_at"]))
        values = non_strings | time_strings | st.text(max_size=20) if key == "issued_at" else non_strings
        return CredentialsDamage(kind, (key,), draw(values))
    if kind == "huge":
        # Zoho answers invalid_client / invalid_client_secret to a client it does not know.
        filler = draw(st.text(string.ascii_letters, min_size=1, max_size=5))
        return CredentialsDamage(
            kind, (draw(st.sampled_from(["client_id", "client_secret"])),), filler * 4000
        )
    keys = st.text(max_size=10).filter(lambda k: k not in CREDENTIALS_KEYS)
    return CredentialsDamage(
        kind, value=draw(st.dictionaries(keys, json_values | deep, min_size=1, max_size=4))
    )


class Hidden(dict[str, Any]):
    """The real credentials: hypothesis prints a failing example's arguments, so never their values."""

    def __repr__(self) -> str:
        return f"<credentials: {', '.join(self)}>"


@pytest.fixture
def credentials_base(secretsmanager: Any, live: LambdaHarness) -> Hidden:
    value = secretsmanager.get_secret_value(SecretId=CREDENTIALS_SECRET)["SecretString"]
    return Hidden(json.loads(value))


def _put(sm: Any, secret_id: str, value: str) -> bool:
    """Write a hostile value; False when botocore or Secrets Manager refuses it (empty, too large)."""
    from botocore.exceptions import ClientError, ParamValidationError

    try:
        sm.put_secret_value(SecretId=secret_id, SecretString=value)
    except (ClientError, ParamValidationError):
        return False
    return True


@fuzz("credentials-secret")
@given(damage=credentials_damage())
def test_damaged_credentials_are_misconfigured_never_a_crash(
    damage: CredentialsDamage,
    credentials_base: Hidden,
    secretsmanager: Any,
    zoho: Any,
    zoho_clock: Any,
    live: LambdaHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    value, allowed = damage.apply(credentials_base)
    if not _put(secretsmanager, CREDENTIALS_SECRET, value):
        return
    zoho_clock.advance(11 * 60)  # clear of Zoho's and the refresher's 10-minute budgets
    response = live({"connection": CONN, "force": True})
    printed = capsys.readouterr()
    assert_no_leak(json.dumps(response), printed.out, printed.err)
    result = only_result(response)
    tally(f"{damage.kind}: {result['outcome']}")
    assert result["outcome"] in allowed, (result, allowed)
    state = read_state(secretsmanager, CONN)
    if result["outcome"] == "refreshed":
        assert state.status is Status.OK
        assert api_accepts(zoho, state)
        leakguard.register(state.access_token)
    elif result["outcome"] == "misconfigured":
        assert state.status is Status.MISCONFIGURED
        assert result["error"]["code"] in (
            "invalid_credentials",
            "not_bootstrapped",
            "invalid_client",
            "invalid_client_secret",
            "accounts_url_not_allowed",
        )
        assert "zoho/crm-eu/credentials" in result["error"]["message"] or result["error"]["code"].startswith(
            "invalid_client"
        )


@st.composite
def token_damage(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A damaged access-token SecretString, and the unknown fields a repair must keep (if parseable)."""
    kind = draw(st.sampled_from(["garbage", "retype", "schema", "times", "extra"]))
    data: dict[str, Any] = {"schema": 1, "status": "pending", "dc": "eu", "access_token": None}
    if kind == "garbage":
        return draw(garbage), {}
    if kind == "retype":
        key = draw(
            st.sampled_from(
                [
                    "access_token",
                    "token_type",
                    "api_domain",
                    "expires_at",
                    "status",
                    "error",
                    "recent_mints",
                    "retry_not_before",
                    "credentials_version",
                ]
            )
        )
        data[key] = draw(non_strings | st.sampled_from(["", "   "]))
    elif kind == "schema":
        data["schema"] = draw(not_schema_1)
    elif kind == "times":
        data["access_token"] = draw(secretish)
        data["status"] = draw(st.sampled_from(["ok", "failing", "pending"]))
        data["expires_at"] = draw(time_strings | st.text(max_size=25))
        data["recent_mints"] = draw(st.lists(time_strings, max_size=3))
    else:
        extra = draw(
            st.dictionaries(
                st.text(max_size=10).filter(
                    lambda k: (
                        k not in data
                        and k
                        not in (
                            "expires_at",
                            "refreshed_at",
                            "error",
                            "recent_mints",
                            "retry_not_before",
                            "token_type",
                            "api_domain",
                            "scope",
                            "credentials_version",
                        )
                    )
                ),
                json_values | deep,
                min_size=1,
                max_size=4,
            )
        )
        data.update(extra)
        return _dumps(data), extra
    return _dumps(data), {}


@fuzz("access-token-secret")
@given(damage=token_damage())
def test_a_damaged_access_token_secret_is_repaired(
    damage: tuple[str, dict[str, Any]],
    live: LambdaHarness,
    secretsmanager: Any,
    zoho: Any,
    zoho_clock: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    value, extra = damage
    if not _put(secretsmanager, TOKEN_SECRET, value):
        return
    zoho_clock.advance(11 * 60)
    expired_or_broken = True
    try:
        parsed = AccessTokenState.from_secret_string(value)
        remaining = parsed.seconds_until_expiry(live.now())
        expired_or_broken = parsed.status is not Status.OK or remaining is None or remaining <= 900
    except ValueError:
        pass
    response = live()
    printed = capsys.readouterr()
    assert_no_leak(json.dumps(response), printed.out, printed.err)
    result = only_result(response)
    tally(f"outcome {result['outcome']}")
    if not expired_or_broken:  # a well-formed state with a fresh token is left alone
        assert result["outcome"] == "fresh"
        return
    assert result["outcome"] == "refreshed", result
    state = read_state(secretsmanager, CONN)
    assert state.status is Status.OK
    assert api_accepts(zoho, state)
    leakguard.register(state.access_token)
    stored = json.loads(secretsmanager.get_secret_value(SecretId=TOKEN_SECRET)["SecretString"])
    for key, kept in extra.items():
        assert _same_json(stored[key], kept), key


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("secret", ["access-token", "credentials"])
def test_a_time_outside_datetime_range_is_handled(
    secret: str, live: LambdaHarness, secretsmanager: Any, zoho_clock: Any
) -> None:
    if secret == "access-token":
        value = json.dumps(
            {"schema": 1, "status": "ok", "access_token": "x" * 20, "expires_at": "0001-01-01T00:00:00+01:00"}
        )
        secretsmanager.put_secret_value(SecretId=TOKEN_SECRET, SecretString=value)
        expected = "refreshed"
    else:
        credentials, _ = read_credentials(secretsmanager)
        data = json.loads(credentials.to_secret_string())
        data["issued_at"] = "9999-12-31T23:59:59-23:59"
        secretsmanager.put_secret_value(SecretId=CREDENTIALS_SECRET, SecretString=json.dumps(data))
        expected = "misconfigured"
    zoho_clock.advance(11 * 60)
    result = only_result(live({"connection": CONN, "force": True}))
    assert result["outcome"] == expected, result


# ---------------------------------------------------------------------------------------------------------
# Names echoed back, and the CLI's argv


def test_a_token_pasted_as_connection_name_is_not_echoed(
    live: LambdaHarness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoho_token.cli import main

    pasted = "1000.0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"
    leakguard.register(pasted)
    response = live({"connection": pasted})
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    exit_code = main(["status", "--connection", pasted])
    printed = capsys.readouterr()
    assert response["error"]["code"] == "invalid_event"
    assert exit_code == 2
    for text in (json.dumps(response), printed.out, printed.err):
        assert pasted[:16] not in text


CLI_WORDS = (
    "bootstrap",
    "status",
    "audit",
    "refresh",
    "revoke",
    "--connection",
    "--prefix",
    "--json",
    "--quiet",
    "--force",
    "--dc",
    "--client-id",
    "--code",
    "--since",
    "--log-group",
    "--region",
    "--replace",
    "--revoke-old",
    "--kms-key-id",
    "--scope",
    "--yes",
    "--help",
    "--version",
    "--",
    "eu",
    "us",
    CONN,
    "7d",
    "zoho/",
)


#: Options whose value the CLI may legitimately repeat (a prefix, a region...), so a secret-shaped value
#: is not planted right after them. --connection is not among them: a bad name is never echoed.
ECHOABLE = frozenset({"--prefix", "--log-group", "--region", "--dc", "--scope", "--kms-key-id"})


WELL_FORMED = (
    ["status", "--connection", CONN],
    ["status", "--json"],
    ["refresh", "--connection", CONN],
    ["refresh", "--connection", CONN, "--force", "--json"],
    ["revoke", "--connection", CONN, "--yes"],
    ["audit", "--connection", CONN, "--since", "7d"],
    ["bootstrap", "--connection", CONN, "--dc", "eu", "--client-id", "1000.ABCDEFGHIJKLMNOPQRST"],
)


@st.composite
def commands(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A well-formed command (it reaches moto, or the bootstrap's prompts) with a secret added."""
    argv = list(draw(st.sampled_from(WELL_FORMED)))
    value = draw(secretish)
    form = draw(
        st.sampled_from(["--code={}", "--client-secret={}", "{}", "--token={}", "--{}=x", "", "", "", ""])
    )
    if not form:
        return argv, []
    argv.insert(draw(st.integers(1, len(argv))) if form != "{}" else len(argv), form.format(value))
    return argv, [value]


@st.composite
def soups(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """argv, and the secret-shaped values planted in it."""
    argv: list[str] = []
    planted: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        choice = draw(st.integers(0, 9))
        if choice < 6:
            argv.append(draw(st.sampled_from(CLI_WORDS)))
        elif choice < 8 and (not argv or argv[-1] not in ECHOABLE):
            value = draw(secretish)
            form = draw(
                st.sampled_from(
                    ["{}", "--client-secret={}", "--client-id={}", "--code={}", "--{}", "--token={}"]
                )
            )
            argv.append(form.format(value))
            planted.append(value)
        else:
            argv.append(draw(st.text(max_size=12)))
    return argv, planted


@fuzz("cli-argv")
@given(case=commands() | soups())
@example(case=(["bootstrap", "--client-secret", FAKE_SECRETS[1]], [FAKE_SECRETS[1]]))
@example(case=(["status", FAKE_SECRETS[0]], [FAKE_SECRETS[0]]))
@example(case=(["refresh", "--connection", CONN, "--token=" + FAKE_SECRETS[0]], [FAKE_SECRETS[0]]))
def test_cli_argv_exit_codes_and_no_echo(
    case: tuple[list[str], list[str]],
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from zoho_token.cli import main

    argv, planted = case
    # Nothing may leave the machine: a proxy that refuses, except for the local moto server.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("ZOHO_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("ZOHO_GRANT_CODE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    capsys.readouterr()
    exit_code = main(argv)
    printed = capsys.readouterr()
    assert exit_code in (0, 1, 2), (argv, exit_code)
    tally(f"exit code {exit_code}")
    for value in planted:
        assert value not in printed.out
        assert value not in printed.err
    assert_no_leak(printed.out, printed.err)
