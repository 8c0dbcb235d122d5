"""lambda_refresh.models: the two secrets' shapes, handler events, names, times, and error texts that
never echo a secret value."""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lambda_refresh.models import (
    SCHEMA_VERSION,
    TOKEN_TYPE,
    AccessTokenState,
    ConnectionResult,
    Credentials,
    ErrorInfo,
    InvalidEventError,
    InvalidSecretError,
    NotBootstrappedError,
    Outcome,
    RefreshRequest,
    Status,
    fingerprint,
    format_time,
    parse_time,
    sha256_hex,
    validate_connection_name,
)

# Distinctive fake values: any of them in an error text or a repr is a leak.
CLIENT_SECRET = "fakeclientsecret-7d1e0a4b9c2f-models"
REFRESH_TOKEN = "1000.fakerefreshtoken.9f8e7d6c5b4a-models"
ACCESS_TOKEN = "1000.fakeaccesstoken.0a1b2c3d4e5f-models"
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)

T0 = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)


def credentials_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1,
        "client_id": "1000.FAKECLIENTID",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "dc": "eu",
        "accounts_url": "https://accounts.zoho.eu",
        "api_domain": "https://www.zohoapis.eu",
        "scope": "ZohoCRM.modules.ALL",
        "issued_at": "2026-11-25T15:00:00Z",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not _DROP}


def access_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1,
        "access_token": ACCESS_TOKEN,
        "token_type": "Zoho-oauthtoken",
        "api_domain": "https://www.zohoapis.eu",
        "dc": "eu",
        "scope": "ZohoCRM.modules.ALL",
        "expires_at": "2026-11-25T16:00:00Z",
        "refreshed_at": "2026-11-25T15:00:01Z",
        "status": "ok",
        "error": None,
        "credentials_version": "ver-1",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP: Any = object()


def assert_no_secret_text(err: BaseException) -> None:
    """Neither the message, the repr nor a full traceback (chained causes included) shows a value."""
    texts = (str(err), repr(err), "".join(traceback.format_exception(err)))
    for value in SECRETS:
        for text in texts:
            assert value not in text


# ---------------------------------------------------------------------------------------------------------
# Credentials


def test_credentials_parse_the_contract_example() -> None:
    creds = Credentials.from_secret_string(json.dumps(credentials_json()))
    assert creds.client_id == "1000.FAKECLIENTID"
    assert creds.client_secret == CLIENT_SECRET
    assert creds.refresh_token == REFRESH_TOKEN
    assert creds.dc == "eu"
    assert creds.accounts_url == "https://accounts.zoho.eu"
    assert creds.api_domain == "https://www.zohoapis.eu"
    assert creds.scope == "ZohoCRM.modules.ALL"
    assert creds.issued_at == T0
    assert creds.extra == {}


def test_credentials_round_trip() -> None:
    creds = Credentials.from_secret_string(json.dumps(credentials_json()))
    text = creds.to_secret_string()
    assert Credentials.from_secret_string(text) == creds
    assert json.loads(text) == credentials_json()


def test_credentials_round_trip_with_optional_fields_null() -> None:
    source = credentials_json(api_domain=None, scope=None, issued_at=None)
    creds = Credentials.from_secret_string(json.dumps(source))
    assert (creds.api_domain, creds.scope, creds.issued_at) == (None, None, None)
    assert Credentials.from_secret_string(creds.to_secret_string()) == creds


def test_credentials_schema_defaults_to_current() -> None:
    creds = Credentials.from_secret_string(json.dumps(credentials_json(schema=_DROP)))
    assert json.loads(creds.to_secret_string())["schema"] == SCHEMA_VERSION == 1


def test_credentials_unknown_fields_are_kept_and_written_back() -> None:
    source = credentials_json(rotated_by="ops@example.test", history={"previous": [1, 2]})
    creds = Credentials.from_secret_string(json.dumps(source))
    assert creds.extra == {"rotated_by": "ops@example.test", "history": {"previous": [1, 2]}}
    written = json.loads(creds.to_secret_string())
    assert written["rotated_by"] == "ops@example.test"
    assert written["history"] == {"previous": [1, 2]}


def test_credentials_known_fields_win_over_extra() -> None:
    creds = Credentials(
        client_id="1000.REAL",
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        dc="eu",
        accounts_url="https://accounts.zoho.eu",
        api_domain=None,
        scope=None,
        issued_at=None,
        extra={"client_id": "1000.STALE", "schema": 99, "note": "kept"},
    )
    written = json.loads(creds.to_secret_string())
    assert written["client_id"] == "1000.REAL"
    assert written["schema"] == 1
    assert written["note"] == "kept"


@pytest.mark.parametrize(
    "placeholder",
    [
        {"schema": 1, "bootstrapped": False},
        {"schema": 1, "bootstrapped": False, "connection": "crm-eu", "dc": "eu"},
        {"schema": 1, "bootstrapped": False, "client_id": "1000.FAKECLIENTID", "dc": "eu"},
        {"schema": 1, "dc": "eu"},
        {},
    ],
)
def test_placeholder_is_not_bootstrapped(placeholder: dict[str, Any]) -> None:
    with pytest.raises(NotBootstrappedError, match="placeholder"):
        Credentials.from_secret_string(json.dumps(placeholder))


def test_not_bootstrapped_is_an_invalid_secret_error() -> None:
    assert issubclass(NotBootstrappedError, InvalidSecretError)
    assert issubclass(InvalidSecretError, ValueError)


@pytest.mark.parametrize("field_name", ["client_id", "client_secret", "refresh_token", "dc", "accounts_url"])
@pytest.mark.parametrize(
    "bad",
    [_DROP, None, "", "   ", 12345, [CLIENT_SECRET], {"v": REFRESH_TOKEN}, True],
)
def test_credentials_required_fields(field_name: str, bad: Any) -> None:
    with pytest.raises(InvalidSecretError) as info:
        Credentials.from_secret_string(json.dumps(credentials_json(**{field_name: bad})))
    assert not isinstance(info.value, NotBootstrappedError)
    assert f"'{field_name}'" in str(info.value)
    assert "credentials secret" in str(info.value)
    assert_no_secret_text(info.value)


@pytest.mark.parametrize("field_name", ["api_domain", "scope"])
@pytest.mark.parametrize("bad", [42, [CLIENT_SECRET], {"x": REFRESH_TOKEN}])
def test_credentials_optional_string_fields_reject_other_types(field_name: str, bad: Any) -> None:
    with pytest.raises(InvalidSecretError, match=f"'{field_name}'") as info:
        Credentials.from_secret_string(json.dumps(credentials_json(**{field_name: bad})))
    assert_no_secret_text(info.value)


@pytest.mark.parametrize(
    ("issued_at", "problem"),
    [
        ("yesterday", "not an ISO-8601 time"),
        ("2026-13-45T00:00:00Z", "not an ISO-8601 time"),
        ("2026-11-25T15:00:00", "time zone"),
        (1764082800, "time string"),
    ],
)
def test_credentials_bad_times(issued_at: Any, problem: str) -> None:
    with pytest.raises(InvalidSecretError, match="'issued_at'") as info:
        Credentials.from_secret_string(json.dumps(credentials_json(issued_at=issued_at)))
    assert problem in str(info.value)
    assert_no_secret_text(info.value)


@pytest.mark.parametrize("schema", [2, 0, "1", "two"])
def test_wrong_schema_is_rejected(schema: Any) -> None:
    with pytest.raises(InvalidSecretError, match="schema") as info:
        Credentials.from_secret_string(json.dumps(credentials_json(schema=schema)))
    assert "understands schema 1" in str(info.value)
    assert_no_secret_text(info.value)
    with pytest.raises(InvalidSecretError, match="schema"):
        AccessTokenState.from_secret_string(json.dumps(access_json(schema=schema)))


def test_wrong_schema_message_is_bounded() -> None:
    with pytest.raises(InvalidSecretError) as info:
        Credentials.from_secret_string(json.dumps(credentials_json(schema="s" * 1000)))
    assert "s" * 30 not in str(info.value)


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        (f'{{"client_secret": "{CLIENT_SECRET}", ', "not valid JSON"),
        (f"client_secret={CLIENT_SECRET}", "not valid JSON"),
        ("", "not valid JSON"),
        (json.dumps([CLIENT_SECRET, REFRESH_TOKEN]), "must be a JSON object"),
        (json.dumps(CLIENT_SECRET), "must be a JSON object"),
        ("null", "must be a JSON object"),
        (None, "no SecretString"),
        (CLIENT_SECRET.encode(), "no SecretString"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_undecodable_secret_strings(secret_string: Any, problem: str) -> None:
    for parse in (Credentials.from_secret_string, AccessTokenState.from_secret_string):
        with pytest.raises(InvalidSecretError) as info:
            parse(secret_string)
        assert problem in str(info.value)
        assert_no_secret_text(info.value)


def test_credentials_repr_hides_secret_values() -> None:
    creds = Credentials.from_secret_string(json.dumps(credentials_json(extra_secret=CLIENT_SECRET + "-copy")))
    text = repr(creds) + str(creds)
    for value in SECRETS:
        assert value not in text
    assert "1000.FAKECLIENTID" in text  # the client id is not a secret and helps operators


# ---------------------------------------------------------------------------------------------------------
# Access-token state


def full_state() -> AccessTokenState:
    return AccessTokenState(
        access_token=ACCESS_TOKEN,
        api_domain="https://www.zohoapis.eu",
        dc="eu",
        scope="ZohoCRM.modules.ALL",
        expires_at=T0 + timedelta(hours=1),
        refreshed_at=T0 + timedelta(seconds=1),
        status=Status.FAILING,
        error=ErrorInfo(code="zoho_unavailable", message="Zoho is down; kept the token.", since=T0),
        credentials_version="ver-1",
        recent_mints=(T0 - timedelta(minutes=5), T0),
        retry_not_before=T0 + timedelta(minutes=10),
        extra={"consumer_note": {"a": 1}},
    )


def test_access_token_round_trip() -> None:
    state = full_state()
    text = state.to_secret_string()
    assert AccessTokenState.from_secret_string(text) == state
    written = json.loads(text)
    assert written["expires_at"] == "2026-11-25T16:00:00Z"
    assert written["error"] == {
        "code": "zoho_unavailable",
        "message": "Zoho is down; kept the token.",
        "since": "2026-11-25T15:00:00Z",
    }
    assert written["recent_mints"] == ["2026-11-25T14:55:00Z", "2026-11-25T15:00:00Z"]
    assert written["consumer_note"] == {"a": 1}
    assert written["status"] == "failing"
    assert written["schema"] == 1


def test_access_token_parses_the_contract_example() -> None:
    state = AccessTokenState.from_secret_string(json.dumps(access_json()))
    assert state.access_token == ACCESS_TOKEN
    assert state.token_type == TOKEN_TYPE == "Zoho-oauthtoken"
    assert state.status is Status.OK
    assert state.expires_at == T0 + timedelta(hours=1)
    assert state.refreshed_at == T0 + timedelta(seconds=1)
    assert state.error is None
    assert state.credentials_version == "ver-1"
    assert state.recent_mints == ()
    assert state.extra == {}


def test_access_token_unknown_fields_are_kept() -> None:
    state = AccessTokenState.from_secret_string(json.dumps(access_json(future_field=[1, "x"])))
    assert state.extra == {"future_field": [1, "x"]}
    assert json.loads(state.to_secret_string())["future_field"] == [1, "x"]


def test_deployment_placeholder_state_is_pending() -> None:
    state = AccessTokenState.from_secret_string(AccessTokenState(dc="eu").to_secret_string())
    assert state.status is Status.PENDING
    assert state.access_token is None
    assert state.dc == "eu"
    assert state.seconds_until_expiry(T0) is None
    minimal = AccessTokenState.from_secret_string('{"schema": 1}')
    assert (minimal.status, minimal.token_type, minimal.access_token) == (Status.PENDING, TOKEN_TYPE, None)


def test_empty_access_token_reads_as_none() -> None:
    assert AccessTokenState.from_secret_string(json.dumps(access_json(access_token=""))).access_token is None


def test_seconds_until_expiry() -> None:
    state = AccessTokenState.from_secret_string(json.dumps(access_json()))
    assert state.seconds_until_expiry(T0) == 3600.0
    assert state.seconds_until_expiry(T0 + timedelta(hours=2)) == -3600.0


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"access_token": 12345}, "access_token"),
        ({"access_token": [ACCESS_TOKEN]}, "access_token"),
        ({"api_domain": {"x": ACCESS_TOKEN}}, "api_domain"),
        ({"credentials_version": 7}, "credentials_version"),
        ({"expires_at": "2026-11-25T16:00:00"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"refreshed_at": 5}, "refreshed_at"),
        ({"retry_not_before": "later"}, "retry_not_before"),
        ({"recent_mints": "2026-11-25T16:00:00Z"}, "recent_mints"),
        ({"recent_mints": ["nope"]}, "recent_mints[]"),
        ({"status": "exploded"}, "status"),
        ({"error": "boom"}, "error"),
        ({"error": {"code": 5, "message": "m", "since": "2026-11-25T15:00:00Z"}}, "error.code"),
        ({"error": {"code": "x", "message": "m"}}, "error.since"),
    ],
)
def test_access_token_invalid_fields_are_named(overrides: dict[str, Any], field_name: str) -> None:
    with pytest.raises(InvalidSecretError) as info:
        AccessTokenState.from_secret_string(json.dumps(access_json(**overrides)))
    assert field_name in str(info.value)
    assert_no_secret_text(info.value)


def test_unknown_status_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidSecretError) as info:
        AccessTokenState.from_secret_string(json.dumps(access_json(status="exploded")))
    for status in Status:
        assert status.value in str(info.value)


def test_access_token_state_repr_hides_the_token() -> None:
    state = full_state()
    assert ACCESS_TOKEN not in repr(state)
    assert ACCESS_TOKEN not in str(state)
    assert "status=<Status.FAILING" in repr(state)


def test_with_changes_keeps_everything_else() -> None:
    state = full_state()
    changed = state.with_changes(status=Status.OK, error=None)
    assert changed.status is Status.OK
    assert changed.error is None
    assert changed.access_token == ACCESS_TOKEN
    assert changed.extra == state.extra
    assert state.status is Status.FAILING


def test_times_with_offsets_are_stored_in_utc() -> None:
    state = AccessTokenState.from_secret_string(
        json.dumps(access_json(expires_at="2026-11-25T18:00:00+02:00"))
    )
    assert state.expires_at == T0 + timedelta(hours=1)
    assert json.loads(state.to_secret_string())["expires_at"] == "2026-11-25T16:00:00Z"


# ---------------------------------------------------------------------------------------------------------
# Connection names


@pytest.mark.parametrize("name", ["a", "0", "crm-eu", "crm-eu-2", "a-", "9lives", "a" * 63, "a" + "-" * 62])
def test_valid_connection_names(name: str) -> None:
    assert validate_connection_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 64,
        "Crm-eu",
        "CRM",
        "-crm",
        "crm_eu",
        "crm.eu",
        "crm eu",
        "crm/eu",
        "crm-eu\n",
        "\ncrm-eu",
        "crm-\u00e9u",  # é
        "\uff43rm",  # fullwidth c
        "crm-\u0435u",  # Cyrillic e
        "\u0663",  # Arabic-Indic digit three
    ],
)
def test_invalid_connection_names(name: str) -> None:
    with pytest.raises(ValueError, match="1-63 characters") as info:
        validate_connection_name(name)
    assert "crm-eu" in str(info.value)  # the message shows an example


@pytest.mark.parametrize("name", [None, 42, b"crm-eu", ["crm-eu"]])
def test_non_string_connection_names(name: Any) -> None:
    with pytest.raises(ValueError, match="invalid connection name") as info:
        validate_connection_name(name)
    assert type(name).__name__ in str(info.value)


def test_long_invalid_name_is_truncated_in_the_message() -> None:
    with pytest.raises(ValueError, match="invalid connection name") as info:
        validate_connection_name("x" * 5000)
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------------------------------------
# Events

DIGEST = hashlib.sha256(b"some token").hexdigest()


@pytest.mark.parametrize("event", [None, {}, {"connection": None}, {"force": False}, {"unrelated": 1}])
def test_events_meaning_every_connection(event: Any) -> None:
    assert RefreshRequest.from_event(event) == RefreshRequest(None, False, None)


def test_single_connection_event() -> None:
    assert RefreshRequest.from_event({"connection": "crm-eu"}) == RefreshRequest("crm-eu", False, None)


def test_forced_event() -> None:
    request = RefreshRequest.from_event({"connection": "crm-eu", "force": True})
    assert (request.connection, request.force, request.invalid_token_sha256) == ("crm-eu", True, None)


def test_invalid_token_digest_is_normalised_to_lower_case() -> None:
    request = RefreshRequest.from_event({"connection": "crm-eu", "invalid_token_sha256": DIGEST.upper()})
    assert request.invalid_token_sha256 == DIGEST
    assert request.force is False
    both = RefreshRequest.from_event({"connection": "crm-eu", "force": True, "invalid_token_sha256": DIGEST})
    assert (both.force, both.invalid_token_sha256) == (True, DIGEST)


@pytest.mark.parametrize(
    "digest",
    [
        DIGEST[:-1],
        DIGEST + "0",
        "",
        "g" * 64,
        DIGEST[:-1] + " ",
        " " + DIGEST[:-1],
        "\uff41" * 64,  # fullwidth a
        int(DIGEST, 16),
        [DIGEST],
    ],
)
def test_bad_invalid_token_digests(digest: Any) -> None:
    with pytest.raises(InvalidEventError, match="64-character sha256 hex"):
        RefreshRequest.from_event({"connection": "crm-eu", "invalid_token_sha256": digest})


@pytest.mark.parametrize(
    "event",
    [{"force": True}, {"invalid_token_sha256": DIGEST}, {"connection": None, "force": True}],
)
def test_force_and_digest_need_a_connection(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError, match="need a 'connection'"):
        RefreshRequest.from_event(event)


@pytest.mark.parametrize("force", ["true", 1, 0, None, "yes"])
def test_force_must_be_a_boolean(force: Any) -> None:
    with pytest.raises(InvalidEventError, match="'force' must be true or false"):
        RefreshRequest.from_event({"connection": "crm-eu", "force": force})


@pytest.mark.parametrize("event", [[], ["crm-eu"], "crm-eu", 42, True, ({"connection": "crm-eu"},)])
def test_non_object_events(event: Any) -> None:
    with pytest.raises(InvalidEventError, match="JSON object"):
        RefreshRequest.from_event(event)


@pytest.mark.parametrize("name", ["a" * 64, "CRM-EU", "-crm", "crm-\u00e9u", "", 5, ["crm-eu"]])
def test_bad_connection_in_event(name: Any) -> None:
    with pytest.raises(InvalidEventError, match="1-63 of a-z") as info:
        RefreshRequest.from_event({"connection": name})
    if isinstance(name, str) and name:
        assert name not in str(info.value)  # described by its shape, never echoed


def test_a_token_passed_as_connection_is_not_echoed() -> None:
    token = "1000." + "ab" * 16 + "." + "cd" * 16
    with pytest.raises(InvalidEventError) as info:
        RefreshRequest.from_event({"connection": token})
    assert token not in str(info.value)
    assert "a string of 70 characters" in str(info.value)


def test_invalid_event_error_is_a_value_error() -> None:
    assert issubclass(InvalidEventError, ValueError)


# ---------------------------------------------------------------------------------------------------------
# Fingerprints and times


def test_fingerprint_is_a_stable_short_hex_prefix() -> None:
    first = fingerprint(ACCESS_TOKEN)
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert fingerprint(ACCESS_TOKEN) == first
    assert first == hashlib.sha256(ACCESS_TOKEN.encode()).hexdigest()[:12]
    assert fingerprint(ACCESS_TOKEN + "x") != first
    assert first not in ACCESS_TOKEN


def test_sha256_hex_is_what_consumers_send() -> None:
    digest = sha256_hex(ACCESS_TOKEN)
    assert digest == hashlib.sha256(ACCESS_TOKEN.encode()).hexdigest()
    assert RefreshRequest.from_event(
        {"connection": "c", "invalid_token_sha256": digest}
    ).invalid_token_sha256 == (digest)
    assert digest.startswith(fingerprint(ACCESS_TOKEN))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 25, 15, 0, 0, 999999, tzinfo=UTC), "2026-11-25T15:00:00Z"),
        (datetime(2026, 11, 25, 17, 30, 5, tzinfo=timezone(timedelta(hours=2))), "2026-11-25T15:30:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))), "2026-01-02T08:04:05Z"),
    ],
)
def test_format_time(moment: datetime, expected: str) -> None:
    text = format_time(moment)
    assert text == expected
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T15:00:00Z", T0),
        ("2026-11-25T15:00:00+00:00", T0),
        ("2026-11-25T16:00:00+01:00", T0),
        ("2026-11-25T15:00:00.250Z", T0 + timedelta(milliseconds=250)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "t")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["2026-11-25T15:00:00", "2026-11-25", "soon", "", None, 0, 1.5])
def test_parse_time_rejects(value: Any) -> None:
    with pytest.raises(InvalidSecretError, match="field 'when'"):
        parse_time(value, "when")


def test_format_then_parse_is_identity_for_whole_seconds() -> None:
    assert parse_time(format_time(T0), "t") == T0


# ---------------------------------------------------------------------------------------------------------
# Results


def test_connection_result_json() -> None:
    result = ConnectionResult(
        "crm-eu",
        Outcome.FAILED,
        expires_at=T0,
        error=ErrorInfo("timeout", "Zoho did not answer", T0),
        zoho_calls=2,
    )
    assert result.to_json() == {
        "connection": "crm-eu",
        "outcome": "failed",
        "expires_at": "2026-11-25T15:00:00Z",
        "error": {"code": "timeout", "message": "Zoho did not answer", "since": "2026-11-25T15:00:00Z"},
    }
    assert ConnectionResult("crm-eu", Outcome.FRESH).to_json() == {
        "connection": "crm-eu",
        "outcome": "fresh",
        "expires_at": None,
        "error": None,
    }


def test_outcomes_and_statuses_match_the_contract() -> None:
    assert {o.value for o in Outcome} == {
        "refreshed",
        "fresh",
        "failed",
        "revoked",
        "misconfigured",
        "pending",
        "skipped",
    }
    assert {s.value for s in Status} == {"pending", "ok", "failing", "revoked", "misconfigured"}
