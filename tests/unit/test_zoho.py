"""lambda_refresh.zoho: DC registry, accounts-URL allow-list, error taxonomy and the HTTP client.

The client is exercised over real HTTP on loopback: the project's Zoho simulator for Zoho-shaped
behaviour, and a small scripted server of our own for what the simulator cannot do (redirects,
recording exactly what arrived on the wire, a revoke endpoint that fails).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from lambda_refresh.zoho import (
    DATA_CENTERS,
    LOCAL_DC,
    MAX_TRUSTED_LIFETIME,
    AccountsUrlNotAllowedError,
    ErrorClass,
    HttpPolicy,
    TokenGrant,
    ZohoAccountsClient,
    ZohoError,
    check_accounts_url,
    classify_error,
    data_center,
    parse_lifetime,
    parse_token_response,
)
from tests import leakguard
from zoho_token.simulator import Fault, ZohoSimulator

NOW = datetime(2026, 11, 25, 15, 0, 0, 654321, tzinfo=UTC)
# Distinctive fake values: any of them showing up in an error text is a leak.
FAKE_ACCESS = "1000.fakeaccess0c0ffee0c0ffee0c0ffee.fakeaccess0c0ffee0c0ffee"
FAKE_REFRESH = "1000.fakerefresh0badcafe0badcafe0bad.fakerefresh0badcafe0bad"
FAKE_CLIENT_ID = "1000.FAKECLIENTID0000000000000000"
FAKE_SECRET = "fakeclientsecret5ca1ab1e5ca1ab1e5ca1ab1e"
FAKE_CODE = "1000.fakegrantcode0ddba110ddba110ddba11.fakegrantcode0ddba110"
NO_SLEEP_POLICY = HttpPolicy(
    connect_timeout=2.0, read_timeout=2.0, attempts=3, backoff_base=0.5, backoff_cap=1.0
)

# Registered up front: every test of this module then fails if a fake credential is ever printed or logged.
leakguard.register(FAKE_ACCESS, FAKE_REFRESH, FAKE_SECRET, FAKE_CODE)


def _assert_no_secret(err: BaseException, *values: str) -> None:
    texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    if isinstance(err, ZohoError):
        texts += [err.message, err.code]
    for value in values:
        for text in texts:
            assert value not in text


# ---------------------------------------------------------------------------------------------------------
# Data centers

# Written out from /work/shared/zoho-oauth-facts.md, independently of the product's table.
FACTS_DCS = {
    "us": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "uk": ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    "ae": ("https://accounts.zoho.ae", "https://www.zohoapis.ae"),
}


def test_registry_has_exactly_the_facts_data_centers() -> None:
    assert set(DATA_CENTERS) == set(FACTS_DCS)


@pytest.mark.parametrize(("code", "urls"), sorted(FACTS_DCS.items()))
def test_data_center_urls_match_the_facts(code: str, urls: tuple[str, str]) -> None:
    dc = data_center(code)
    assert dc.code == code
    assert (dc.accounts_url, dc.api_domain) == urls
    assert DATA_CENTERS[code] is dc


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        DATA_CENTERS["xx"] = DATA_CENTERS["eu"]  # type: ignore[index]


def test_unknown_data_center_lists_every_valid_code() -> None:
    with pytest.raises(ValueError, match="unknown Zoho data center") as info:
        data_center("xx")
    message = str(info.value)
    assert "'xx'" in message
    for code in FACTS_DCS:
        assert code in message.split("use one of:")[1]


def test_unknown_data_center_message_is_bounded() -> None:
    with pytest.raises(ValueError, match="unknown Zoho data center") as info:
        data_center("z" * 5000)
    assert len(str(info.value)) < 200


# ---------------------------------------------------------------------------------------------------------
# Accounts-URL allow-list


@pytest.mark.parametrize(("code", "urls"), sorted(FACTS_DCS.items()))
@pytest.mark.parametrize("slash", ["", "/"])
def test_allow_list_accepts_each_dc_accounts_url(code: str, urls: tuple[str, str], slash: str) -> None:
    assert check_accounts_url(urls[0] + slash) == code
    assert check_accounts_url(urls[0] + slash, allow_local=True) == code


def test_allow_list_host_comparison_is_case_insensitive() -> None:
    assert check_accounts_url("https://ACCOUNTS.Zoho.EU") == "eu"


REJECTED_URLS = [
    # scheme
    "http://accounts.zoho.eu",
    "ftp://accounts.zoho.eu",
    "//accounts.zoho.eu",
    "accounts.zoho.eu",
    "https:accounts.zoho.eu",
    "https:///accounts.zoho.eu",
    # ports, even the default one spelled out
    "https://accounts.zoho.eu:443",
    "https://accounts.zoho.eu:8443",
    "https://accounts.zoho.eu:99999",
    "https://accounts.zoho.eu:x",
    # user info, either way round
    "https://accounts.zoho.eu@evil.test",
    "https://evil.test@accounts.zoho.eu",
    "https://user:pass@accounts.zoho.eu",
    "https://@accounts.zoho.eu",
    "https://accounts.zoho.eu\\@evil.test",
    # look-alikes
    "https://accounts.zoho.eu.evil.test",
    "https://accounts-zoho.eu",
    "https://accounts.zoho.eu.",
    "https://xaccounts.zoho.eu",
    "https://evil.test/accounts.zoho.eu",
    "https://accounts.zoho.ca",  # the CA accounts server lives on zohocloud.ca
    "https://www.zohoapis.eu",  # an API domain is not an accounts server
    "https://accounts.zoho.eu%2Eevil.test",
    # IDN confusables and their punycode forms
    "https://accounts.z\u043eho.eu",  # Cyrillic o
    "https://accounts.zoh\u043e.eu",
    "https://accounts.zoho\uff0eeu",  # fullwidth full stop
    "https://accounts.xn--zho-sed.eu",
    "https://accounts.xn--zoh-ued.eu",
    # path, query, fragment
    "https://accounts.zoho.eu/oauth/v2/token",
    "https://accounts.zoho.eu//",
    "https://accounts.zoho.eu/x",
    "https://accounts.zoho.eu?x=1",
    "https://accounts.zoho.eu/?redirect=https://evil.test",
    "https://accounts.zoho.eu#frag",
    "https://accounts.zoho.eu;params",
    # whitespace and control characters (urlsplit silently drops tab/CR/LF inside a URL)
    " https://accounts.zoho.eu",
    "https://accounts.zoho.eu ",
    "https://accounts.zoho.eu\n",
    "https://accounts.zo\nho.eu",
    "https://accounts.zo\tho.eu",
    "https://accounts.zoho.eu\r\nX-Injected: 1",
    "https://accounts.zoho.eu\x00",
    "",
]


@pytest.mark.parametrize("url", REJECTED_URLS)
def test_allow_list_rejects(url: str) -> None:
    with pytest.raises(AccountsUrlNotAllowedError):
        check_accounts_url(url)
    with pytest.raises(AccountsUrlNotAllowedError):
        check_accounts_url(url, allow_local=True)


@pytest.mark.parametrize("value", [None, b"https://accounts.zoho.eu", 42, ["https://accounts.zoho.eu"]])
def test_allow_list_rejects_non_strings(value: Any) -> None:
    with pytest.raises(AccountsUrlNotAllowedError):
        check_accounts_url(value, allow_local=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://accounts.zoho.eu?",
        "https://accounts.zoho.eu#",
        "https://accounts.zoho.eu/?",
        "https://accounts.zoho.eu/#",
    ],
)
def test_allow_list_rejects_empty_query_or_fragment(url: str) -> None:
    with pytest.raises(AccountsUrlNotAllowedError):
        check_accounts_url(url)


def test_rejection_is_a_value_error_listing_the_allowed_servers() -> None:
    with pytest.raises(ValueError, match="not a Zoho accounts server") as info:
        check_accounts_url("https://accounts.zoho.eu.evil.test")
    assert isinstance(info.value, AccountsUrlNotAllowedError)
    for accounts_url, _api in FACTS_DCS.values():
        assert accounts_url in str(info.value)


@pytest.mark.parametrize(
    ("url", "userinfo"),
    [
        ("https://zohouser:hunter2secretpw@accounts.zoho.eu", "hunter2secretpw"),
        ("https://accounts.zoho.eu:topsecretpw@evil.test", "topsecretpw"),
        ("https://evil.test@accounts.zoho.eu", "evil.test"),
        ("http://admin:loopbacksecretpw@127.0.0.1:8080", "loopbacksecretpw"),
    ],
)
def test_rejection_message_never_echoes_the_url_or_its_userinfo(url: str, userinfo: str) -> None:
    with pytest.raises(AccountsUrlNotAllowedError) as info:
        check_accounts_url(url, allow_local=True)
    text = str(info.value) + repr(info.value)
    assert userinfo not in text
    assert url not in text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/",
        "http://localhost:1",
        "http://LOCALHOST:65535",
    ],
)
def test_loopback_is_allowed_only_with_allow_local(url: str) -> None:
    assert check_accounts_url(url, allow_local=True) == LOCAL_DC == "local"
    with pytest.raises(AccountsUrlNotAllowedError, match="ZOHO_ALLOW_LOCAL_ACCOUNTS=true"):
        check_accounts_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080",
        "http://127.1:8080",
        "http://0x7f000001:8080",
        "http://[::1]:8080",
        "http://127.0.0.1",  # no port
        "http://localhost",
        "https://127.0.0.1:8080",  # only http:// is promised for loopback
        "https://localhost:8443",
        "http://localhost.:8080",
        "http://localhost.evil.test:8080",
        "http://127.0.0.1.evil.test:8080",
        "http://user@127.0.0.1:8080",
        "http://evil.test@localhost:8080",
        "http://127.0.0.1:8080/oauth/v2/token",
        "http://127.0.0.1:8080?x=1",
        "http://127.0.0.1:70000",
    ],
)
def test_loopback_lookalikes_are_rejected_even_with_allow_local(url: str) -> None:
    with pytest.raises(AccountsUrlNotAllowedError):
        check_accounts_url(url, allow_local=True)


# ---------------------------------------------------------------------------------------------------------
# Error taxonomy: classify_error


@pytest.mark.parametrize(
    ("error", "grant", "expected_class", "expected_code"),
    [
        ("invalid_code", "refresh_token", ErrorClass.REVOKED, "invalid_code"),
        ("invalid_code", "authorization_code", ErrorClass.GRANT_REJECTED, "invalid_code"),
        ("invalid_client", "refresh_token", ErrorClass.MISCONFIGURED, "invalid_client"),
        ("invalid_client", "authorization_code", ErrorClass.MISCONFIGURED, "invalid_client"),
        ("invalid_client_secret", "refresh_token", ErrorClass.MISCONFIGURED, "invalid_client_secret"),
        ("invalid_client_secret", "authorization_code", ErrorClass.MISCONFIGURED, "invalid_client_secret"),
        ("invalid_redirect_uri", "refresh_token", ErrorClass.MISCONFIGURED, "invalid_redirect_uri"),
        ("invalid_redirect_uri", "authorization_code", ErrorClass.MISCONFIGURED, "invalid_redirect_uri"),
        ("access_denied", "authorization_code", ErrorClass.GRANT_LIMIT, "access_denied"),
        ("Access Denied", "refresh_token", ErrorClass.RATE_LIMITED, "rate_limited"),
        ("access_denied", "refresh_token", ErrorClass.RATE_LIMITED, "rate_limited"),  # back off, never retry
        ("Access Denied", "authorization_code", ErrorClass.GRANT_LIMIT, "access_denied"),
        ("something_new", "refresh_token", ErrorClass.TRANSIENT, "unknown_error"),
        ("invalid_request", "authorization_code", ErrorClass.TRANSIENT, "unknown_error"),
    ],
)
def test_classify_documented_errors(
    error: str, grant: str, expected_class: ErrorClass, expected_code: str
) -> None:
    err = classify_error(error, "", grant=grant, dc_hint="eu")
    assert isinstance(err, ZohoError)
    assert (err.error_class, err.code) == (expected_class, expected_code)
    assert err.message == str(err)


@pytest.mark.parametrize("spelling", ["INVALID_CODE", " invalid_code ", "Invalid_Code"])
def test_classify_ignores_case_and_surrounding_space(spelling: str) -> None:
    assert classify_error(spelling, "", grant="refresh_token", dc_hint="eu").error_class is ErrorClass.REVOKED


@pytest.mark.parametrize(
    ("error", "grant", "must_say"),
    [
        ("invalid_code", "refresh_token", "bootstrap --replace"),
        ("invalid_code", "authorization_code", "Generate a new one"),
        ("invalid_client_secret", "refresh_token", "secret"),
        ("invalid_redirect_uri", "authorization_code", "redirect URI"),
        ("access_denied", "authorization_code", "wait 10 minutes"),
        ("Access Denied", "refresh_token", "10 minutes"),
        ("weird", "refresh_token", "last good token kept"),
    ],
)
def test_messages_say_what_to_do(error: str, grant: str, must_say: str) -> None:
    assert must_say in classify_error(error, "", grant=grant, dc_hint="eu").message


@pytest.mark.parametrize("dc_hint", ["eu", "ca", "local"])
def test_invalid_client_message_names_the_dc(dc_hint: str) -> None:
    err = classify_error("invalid_client", "", grant="refresh_token", dc_hint=dc_hint)
    assert f"at the {dc_hint} accounts server" in err.message
    assert "data center" in err.message


@pytest.mark.parametrize(
    "description",
    [
        "You have made too many requests continuously. Please try again after some time.",
        "Token creation throttle limit reached. Try again later.",
    ],
)
@pytest.mark.parametrize("error", ["Access Denied", "something_else"])
def test_throttle_descriptions_mean_rate_limited_on_refresh(error: str, description: str) -> None:
    err = classify_error(error, description, grant="refresh_token", dc_hint="eu")
    assert err.error_class is ErrorClass.RATE_LIMITED
    assert err.code == "rate_limited"


def test_unknown_error_value_is_sanitised() -> None:
    nasty = "bad\"value'\n\r\t<script>" + "x" * 5000
    err = classify_error(nasty, "", grant="refresh_token", dc_hint="eu")
    assert err.error_class is ErrorClass.TRANSIENT
    assert err.code == "unknown_error"
    assert "\n" not in err.message
    assert "\r" not in err.message
    assert '"' not in err.message
    assert "<" not in err.message
    assert "(not shown)" in err.message  # not a plain code: it could carry anything, so it is not echoed
    assert "script" not in err.message
    assert len(err.message) < 300


def test_empty_unknown_error_value_is_shown_as_empty() -> None:
    err = classify_error("", "", grant="refresh_token", dc_hint="eu")
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "unknown_error")
    assert "(not shown)" in err.message


# ---------------------------------------------------------------------------------------------------------
# Error taxonomy: parse_token_response


def _parse(status: int, body: Any, *, grant: str = "refresh_token", now: datetime = NOW) -> TokenGrant:
    text = body if isinstance(body, str) else json.dumps(body)
    return parse_token_response(status, text, grant=grant, now=now, dc_hint="eu")


def _parse_error(status: int, body: Any, *, grant: str = "refresh_token") -> ZohoError:
    with pytest.raises(ZohoError) as info:
        _parse(status, body, grant=grant)
    return info.value


def _ok_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": FAKE_ACCESS,
        "api_domain": "https://www.zohoapis.eu",
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    body.update(extra)
    return body


RATE_LIMIT_BODY = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
    "status": "failure",
}


@pytest.mark.parametrize("status", [200, 400])
def test_oauth_errors_are_read_from_the_body_whatever_the_status(status: int) -> None:
    assert _parse_error(status, {"error": "invalid_code"}).error_class is ErrorClass.REVOKED
    assert (
        _parse_error(status, {"error": "invalid_code"}, grant="authorization_code").error_class
        is ErrorClass.GRANT_REJECTED
    )
    assert _parse_error(status, {"error": "invalid_client"}).error_class is ErrorClass.MISCONFIGURED
    assert _parse_error(status, RATE_LIMIT_BODY).error_class is ErrorClass.RATE_LIMITED


def test_invalid_client_from_a_body_names_the_dc_hint() -> None:
    assert "at the eu accounts server" in _parse_error(200, {"error": "invalid_client"}).message


def test_an_error_field_wins_over_an_access_token_in_the_same_body() -> None:
    err = _parse_error(200, _ok_body(error="invalid_code"))
    assert err.error_class is ErrorClass.REVOKED


@pytest.mark.parametrize(
    "body",
    [
        {"error": "invalid_code", "access_token": FAKE_ACCESS, "refresh_token": FAKE_REFRESH},
        {"error": "invalid_client", "error_description": f"client {FAKE_SECRET} token {FAKE_REFRESH}"},
        {"error": "unheard_of", "error_description": FAKE_ACCESS, "refresh_token": FAKE_REFRESH},
        {"error": "Access Denied", "error_description": f"too many requests for {FAKE_REFRESH}"},
        {"access_token": "", "refresh_token": FAKE_REFRESH, "expires_in": 3600},
        {"access_token": FAKE_ACCESS, "refresh_token": FAKE_REFRESH, "expires_in": "soon"},
        {"access_token": FAKE_ACCESS, "expires_in": -1, "client_secret": FAKE_SECRET},
    ],
)
def test_error_texts_never_contain_token_values_from_the_body(body: dict[str, Any]) -> None:
    err = _parse_error(200, body)
    _assert_no_secret(err, FAKE_ACCESS, FAKE_REFRESH, FAKE_SECRET)


def test_non_json_error_texts_never_contain_the_body() -> None:
    text = f"<html>maintenance {FAKE_ACCESS}</html>"
    _assert_no_secret(_parse_error(503, text), FAKE_ACCESS)
    _assert_no_secret(_parse_error(200, f"access_token={FAKE_ACCESS}"), FAKE_ACCESS)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (503, "<!DOCTYPE html><html><body>Zoho Accounts is under maintenance</body></html>"),
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (504, ""),
        (200, "  <html><body>hello</body></html>"),
    ],
)
def test_outage_pages_are_transient_zoho_unavailable(status: int, text: str) -> None:
    err = _parse_error(status, text)
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "zoho_unavailable")
    assert f"HTTP {status}" in err.message


@pytest.mark.parametrize("status", [500, 502, 401])
def test_json_without_error_on_non_200_is_transient(status: int) -> None:
    err = _parse_error(status, _ok_body())
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "zoho_unavailable")


@pytest.mark.parametrize(
    "text",
    ["OK", "", '{"access_token":"1000.', "[]", '[{"access_token": "x"}]', '"a string"', "null", "42", "true"],
)
def test_non_object_bodies_are_malformed(text: str) -> None:
    err = _parse_error(200, text)
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "malformed_response")


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    err = _parse_error(200, "[" * 100_000)
    assert err.code == "malformed_response"


@pytest.mark.parametrize(
    "body",
    [
        {"api_domain": "https://www.zohoapis.eu", "token_type": "Bearer", "expires_in": 3600},
        _ok_body(access_token=""),
        _ok_body(access_token="   "),
        _ok_body(access_token=None),
        _ok_body(access_token=12345),
        _ok_body(access_token=["1000.x"]),
    ],
)
def test_200_without_a_usable_access_token_is_malformed(body: dict[str, Any]) -> None:
    err = _parse_error(200, body)
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "malformed_response")
    assert "access_token" in err.message


@pytest.mark.parametrize(
    "lifetime_fields",
    [
        {},
        {"expires_in": None},
        {"expires_in": 0},
        {"expires_in": -3600},
        {"expires_in": "-5"},
        {"expires_in": "soon"},
        {"expires_in": ""},
        {"expires_in": "nan"},
        {"expires_in": True},
        {"expires_in": [3600]},
        {"expires_in": {"s": 3600}},
        {"expires_in_sec": 0, "expires_in": 3_600_000},
    ],
)
def test_200_without_a_usable_lifetime_is_malformed(lifetime_fields: dict[str, Any]) -> None:
    body = _ok_body()
    del body["expires_in"]
    body.update(lifetime_fields)
    err = _parse_error(200, body)
    assert (err.error_class, err.code) == (ErrorClass.TRANSIENT, "malformed_response")
    assert "expires_in" in err.message


def test_json_nan_lifetime_is_malformed() -> None:
    text = '{"access_token": "1000.x", "expires_in": NaN}'
    assert _parse_error(200, text).code == "malformed_response"


@pytest.mark.parametrize(
    ("fields", "seconds", "clamped"),
    [
        ({"expires_in": 3_600_000, "expires_in_sec": 3600}, 3600, False),  # legacy: ms + seconds
        ({"expires_in": 3_600_000, "expires_in_sec": 1800}, 1800, False),  # expires_in_sec wins
        ({"expires_in": 3_600_000}, 3600, False),  # bare milliseconds recognised
        ({"expires_in": 1_800_000}, 1800, False),
        ({"expires_in": 10**12}, MAX_TRUSTED_LIFETIME, True),
        ({"expires_in": 10**12, "expires_in_sec": 10**12}, MAX_TRUSTED_LIFETIME, True),
        ({"expires_in": 7200}, MAX_TRUSTED_LIFETIME, True),
        ({"expires_in": 3601}, MAX_TRUSTED_LIFETIME, True),
        ({"expires_in": 3600}, 3600, False),
        ({"expires_in": 1800}, 1800, False),
        ({"expires_in": 1}, 1, False),
        ({"expires_in": "3600"}, 3600, False),
        ({"expires_in_sec": "1800"}, 1800, False),
        ({"expires_in": 3599.9}, 3599, False),
        ({"expires_in_sec": True, "expires_in": 1200}, 1200, False),  # a bool is not a number
    ],
)
def test_parse_lifetime(fields: dict[str, Any], seconds: int, clamped: bool) -> None:
    assert parse_lifetime(fields) == (seconds, clamped)


def test_parse_lifetime_rejects_bool() -> None:
    with pytest.raises(ValueError, match="no positive"):
        parse_lifetime({"expires_in": True})


def test_parse_lifetime_never_returns_zero_seconds() -> None:
    try:
        seconds, _clamped = parse_lifetime({"expires_in": 0.5})
    except ValueError:
        return
    assert seconds >= 1


def test_legacy_and_clamped_lifetimes_reach_the_grant() -> None:
    legacy = _parse(200, _ok_body(expires_in=3_600_000, expires_in_sec=3600))
    assert (legacy.lifetime_seconds, legacy.expiry_clamped) == (3600, False)
    absurd = _parse(200, _ok_body(expires_in=10**12))
    assert (absurd.lifetime_seconds, absurd.expiry_clamped) == (3600, True)
    assert absurd.expires_at == datetime(2026, 11, 25, 16, 0, 0, tzinfo=UTC)


def test_exchange_grant_fields() -> None:
    body = _ok_body(refresh_token=FAKE_REFRESH, scope="ZohoCRM.modules.ALL,ZohoCRM.users.READ")
    grant = _parse(200, body, grant="authorization_code")
    assert grant.access_token == FAKE_ACCESS
    assert grant.refresh_token == FAKE_REFRESH
    assert grant.api_domain == "https://www.zohoapis.eu"
    assert grant.token_type == "Bearer"
    assert grant.scope == "ZohoCRM.modules.ALL ZohoCRM.users.READ"
    assert grant.lifetime_seconds == 3600
    assert grant.expiry_clamped is False


def test_expires_at_is_absolute_whole_seconds() -> None:
    grant = _parse(200, _ok_body(expires_in=1800))
    assert grant.expires_at == datetime(2026, 11, 25, 15, 30, 0, tzinfo=UTC)
    assert grant.expires_at.microsecond == 0
    assert grant.expires_at.utcoffset() == timedelta(0)
    later = _parse(200, _ok_body(expires_in=1800), now=NOW + timedelta(hours=5))
    assert later.expires_at - grant.expires_at == timedelta(hours=5)


def test_exchange_without_refresh_token_gives_none() -> None:
    grant = _parse(200, _ok_body(), grant="authorization_code")
    assert grant.refresh_token is None
    assert _parse(200, _ok_body(refresh_token=""), grant="authorization_code").refresh_token is None


def test_refresh_answer_has_no_refresh_token() -> None:
    assert _parse(200, _ok_body()).refresh_token is None


def test_refresh_token_is_only_surfaced_for_the_exchange() -> None:
    grant = _parse(200, _ok_body(refresh_token=FAKE_REFRESH))
    surfaced = grant.refresh_token is not None  # a bool, so a failure report cannot show the token
    assert not surfaced


def test_token_type_defaults_to_bearer() -> None:
    body = _ok_body()
    del body["token_type"]
    assert _parse(200, body).token_type == "Bearer"
    assert _parse(200, _ok_body(token_type="")).token_type == "Bearer"
    assert _parse(200, _ok_body(token_type="Zoho-oauthtoken")).token_type == "Zoho-oauthtoken"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("ZohoCRM.modules.ALL", "ZohoCRM.modules.ALL"),
        ("a,b", "a b"),
        ("a b", "a b"),
        ("a, b", "a b"),
        (" a ,, b  c ", "a b c"),
        ("", None),
        ("  ", None),
        (None, None),
        (["a"], None),
    ],
)
def test_scope_is_normalised(scope: Any, expected: str | None) -> None:
    assert _parse(200, _ok_body(scope=scope)).scope == expected


def test_missing_or_bad_api_domain_is_none() -> None:
    body = _ok_body()
    del body["api_domain"]
    assert _parse(200, body).api_domain is None
    assert _parse(200, _ok_body(api_domain=42)).api_domain is None


def test_grant_repr_hides_tokens() -> None:
    grant = _parse(200, _ok_body(refresh_token=FAKE_REFRESH), grant="authorization_code")
    assert FAKE_ACCESS not in repr(grant)
    assert FAKE_REFRESH not in repr(grant)
    assert "lifetime_seconds=3600" in repr(grant)


# ---------------------------------------------------------------------------------------------------------
# A scripted loopback server of our own


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def token_reply(**extra: Any) -> Reply:
    return Reply(body=json.dumps(_ok_body(**extra)).encode())


class ScriptedServer:
    """HTTP on 127.0.0.1 answering from a script (the last reply repeats) and recording every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [token_reply()]
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                reply = outer.replies[min(len(outer.seen), len(outer.replies)) - 1]
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _client(url: str, *, policy: HttpPolicy = NO_SLEEP_POLICY, sleeps: Sleeps | None = None, **kw: Any):
    return ZohoAccountsClient(
        url, allow_local=True, policy=policy, sleep=sleeps if sleeps is not None else Sleeps(), **kw
    )


# ---------------------------------------------------------------------------------------------------------
# Client: what goes on the wire


def test_refresh_sends_credentials_only_in_the_form_body() -> None:
    with ScriptedServer(token_reply()) as server:
        client = _client(server.url)
        grant = client.refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
    assert grant.access_token == FAKE_ACCESS
    (request,) = server.seen
    assert request.method == "POST"
    assert request.path == "/oauth/v2/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert parse_qs(request.body.decode(), strict_parsing=True) == {
        "grant_type": ["refresh_token"],
        "client_id": [FAKE_CLIENT_ID],
        "client_secret": [FAKE_SECRET],
        "refresh_token": [FAKE_REFRESH],
    }
    for value in (FAKE_SECRET, FAKE_REFRESH):
        assert value not in request.path
        assert all(value not in header for header in request.headers.values())


def test_exchange_sends_the_self_client_form_without_redirect_uri() -> None:
    with ScriptedServer(token_reply(refresh_token=FAKE_REFRESH)) as server:
        grant = _client(server.url).exchange_grant_code(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_CODE)
    assert grant.refresh_token == FAKE_REFRESH
    (request,) = server.seen
    assert (request.method, request.path) == ("POST", "/oauth/v2/token")
    assert parse_qs(request.body.decode(), strict_parsing=True) == {
        "grant_type": ["authorization_code"],
        "client_id": [FAKE_CLIENT_ID],
        "client_secret": [FAKE_SECRET],
        "code": [FAKE_CODE],
    }


def test_revoke_sends_the_token_in_the_body() -> None:
    with ScriptedServer(Reply(body=b'{"status":"success"}')) as server:
        assert _client(server.url).revoke_refresh_token(FAKE_REFRESH) is True
    (request,) = server.seen
    assert (request.method, request.path) == ("POST", "/oauth/v2/token/revoke")
    assert parse_qs(request.body.decode()) == {"token": [FAKE_REFRESH]}


def test_trailing_slash_is_not_doubled_in_the_token_path() -> None:
    with ScriptedServer(token_reply()) as server:
        _client(server.url + "/").refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
    assert [r.path for r in server.seen] == ["/oauth/v2/token"]


def test_empty_query_in_accounts_url_never_misroutes_the_token_call() -> None:
    with ScriptedServer(token_reply()) as server:
        try:
            client = _client(server.url + "?")
        except AccountsUrlNotAllowedError:
            return
        client.refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
    assert [r.path for r in server.seen] == ["/oauth/v2/token"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(status: int) -> None:
    with ScriptedServer() as elsewhere:
        redirect = Reply(status, b"", {"Location": f"{elsewhere.url}/steal"})
        with ScriptedServer(redirect) as server:
            sleeps = Sleeps()
            client = _client(server.url, sleeps=sleeps, policy=HttpPolicy(attempts=2))
            with pytest.raises(ZohoError) as info:
                client.refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
            assert (info.value.error_class, info.value.code) == (ErrorClass.TRANSIENT, "unexpected_redirect")
            assert f"HTTP {status}" in info.value.message
            assert len(server.seen) == 2  # transient: retried at the same server
            with pytest.raises(ZohoError):
                client.exchange_grant_code(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_CODE)
            assert len(server.seen) == 3
        assert elsewhere.seen == []


def test_disallowed_url_raises_before_any_request() -> None:
    with ScriptedServer() as server:
        https_form = server.url.replace("http://", "https://")
        for url, allow_local in [
            (server.url, False),
            (https_form, True),
            (server.url + "/oauth", True),
            (server.url.replace("127.0.0.1", "127.0.0.2"), True),
        ]:
            with pytest.raises(AccountsUrlNotAllowedError):
                ZohoAccountsClient(url, allow_local=allow_local)
    assert server.seen == []


def test_revoke_reports_only_what_zoho_confirmed() -> None:
    with ScriptedServer(
        Reply(500, b"oops", {"Content-Type": "text/plain"}),
        Reply(400, b'{"status":"failure","error":"invalid_token"}'),
        Reply(400, b"Bad Request", {"Content-Type": "text/plain"}),
        Reply(
            200,
            b'{"error":"Access Denied","error_description":"You have made too many requests continuously."}',
        ),
        Reply(200, b'{"status":"success"}'),
    ) as server:
        client = _client(server.url)
        with pytest.raises(ZohoError) as outage:
            client.revoke_refresh_token(FAKE_REFRESH)
        assert (outage.value.error_class, outage.value.code) == (ErrorClass.TRANSIENT, "revoke_not_confirmed")
        assert client.revoke_refresh_token(FAKE_REFRESH) is False  # Zoho: that token is not valid
        with pytest.raises(ZohoError) as unclear:  # a 400 that does not say "invalid token" proves nothing
            client.revoke_refresh_token(FAKE_REFRESH)
        assert unclear.value.code == "revoke_not_confirmed"
        with pytest.raises(ZohoError) as throttled:  # never mistaken for "already invalid"
            client.revoke_refresh_token(FAKE_REFRESH)
        assert throttled.value.error_class is ErrorClass.RATE_LIMITED
        assert client.revoke_refresh_token(FAKE_REFRESH) is True
    assert len(server.seen) == 5  # revoke is never retried


def test_connection_refused_is_transient_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    client = _client(f"http://127.0.0.1:{port}", sleeps=sleeps, policy=HttpPolicy(attempts=2))
    with pytest.raises(ZohoError) as info:
        client.refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
    assert (info.value.error_class, info.value.code) == (ErrorClass.TRANSIENT, "connection_error")
    assert client.requests_sent == 2
    assert len(sleeps.delays) == 1
    _assert_no_secret(info.value, FAKE_SECRET, FAKE_REFRESH)
    # Only the exception's class name is kept: requests' text would carry the host, port and path.
    assert "ConnectionError" in info.value.message
    for fragment in (str(port), "/oauth/v2/token", "127.0.0.1"):
        assert fragment not in info.value.message


# ---------------------------------------------------------------------------------------------------------
# Client: TLS and session


class SpySession(requests.Session):
    """A real Session that records what reaches ``send`` and answers instead of the network."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__()
        self.body = body
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self.body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url or ""
        return response


def test_https_client_keeps_tls_verification_and_timeouts() -> None:
    session = SpySession(_ok_body())
    policy = HttpPolicy(connect_timeout=1.5, read_timeout=4.0)
    client = ZohoAccountsClient("https://accounts.zoho.eu/", policy=policy, session=session)
    assert client.dc == "eu"
    client.refresh(FAKE_CLIENT_ID, FAKE_SECRET, FAKE_REFRESH)
    ((request, kwargs),) = session.sent
    assert request.url == "https://accounts.zoho.eu/oauth/v2/token"
    assert request.method == "POST"
    assert urlsplit(request.url).query == ""
    assert kwargs["verify"] is not False
    assert kwargs["verify"]  # True or a CA bundle path, never disabled
    assert kwargs["allow_redirects"] is False
    assert kwargs["timeout"] == (1.5, 4.0)
    assert session.verify is True


def test_injected_real_session_keeps_verify_on(zoho: ZohoSimulator) -> None:
    session = requests.Session()
    client_id, secret = zoho.register_client()
    client = _client(zoho.url, session=session)
    grant = client.exchange_grant_code(client_id, secret, zoho.issue_grant_code(client_id))
    assert grant.refresh_token is not None
    client.refresh(client_id, secret, grant.refresh_token)
    assert session.verify is True


# ---------------------------------------------------------------------------------------------------------
# Client against the Zoho simulator


def _bootstrap(zoho: ZohoSimulator, client: ZohoAccountsClient) -> tuple[str, str, str]:
    client_id, secret = zoho.register_client()
    grant = client.exchange_grant_code(client_id, secret, zoho.issue_grant_code(client_id))
    assert grant.refresh_token is not None
    return client_id, secret, grant.refresh_token


def test_exchange_then_refresh(zoho: ZohoSimulator) -> None:
    client = _client(zoho.url, clock=lambda: NOW)
    assert client.dc == LOCAL_DC
    client_id, secret = zoho.register_client()
    grant = client.exchange_grant_code(client_id, secret, zoho.issue_grant_code(client_id))
    assert grant.refresh_token is not None
    assert zoho.is_refresh_token_valid(grant.refresh_token)
    assert zoho.is_access_token_valid(grant.access_token)
    assert grant.api_domain == zoho.url
    assert grant.scope == "ZohoCRM.modules.ALL"
    assert (grant.lifetime_seconds, grant.expiry_clamped) == (3600, False)
    assert grant.expires_at == datetime(2026, 11, 25, 16, 0, 0, tzinfo=UTC)

    refreshed = client.refresh(client_id, secret, grant.refresh_token)
    assert refreshed.access_token != grant.access_token
    assert zoho.is_access_token_valid(refreshed.access_token)
    assert refreshed.refresh_token is None
    assert client.requests_sent == 2
    stats = zoho.stats
    assert stats.token_requests == {"authorization_code": 1, "refresh_token": 1}
    assert stats.credentials_in_query == 0


def test_legacy_millisecond_expiry_over_http(zoho: ZohoSimulator) -> None:
    client = _client(zoho.url)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.settings.legacy_expiry_format = True
    grant = client.refresh(client_id, secret, refresh_token)
    assert (grant.lifetime_seconds, grant.expiry_clamped) == (3600, False)


def test_absurd_expiry_over_http_is_clamped(zoho: ZohoSimulator) -> None:
    client = _client(zoho.url)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(Fault.ABSURD_EXPIRES_IN)
    grant = client.refresh(client_id, secret, refresh_token)
    assert (grant.lifetime_seconds, grant.expiry_clamped) == (3600, True)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.HTTP_500, "zoho_unavailable"),
        (Fault.HTML_503, "zoho_unavailable"),
        (Fault.MALFORMED_JSON, "malformed_response"),
        (Fault.MISSING_ACCESS_TOKEN, "malformed_response"),
        (Fault.UNKNOWN_ERROR, "unknown_error"),
        (Fault.CONNECTION_RESET, "connection_error"),
    ],
)
def test_transient_faults_use_exactly_the_attempts(zoho: ZohoSimulator, fault: Fault, code: str) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(fault, count=None)
    with pytest.raises(ZohoError) as info:
        client.refresh(client_id, secret, refresh_token)
    assert (info.value.error_class, info.value.code) == (ErrorClass.TRANSIENT, code)
    assert zoho.stats.token_requests["refresh_token"] == NO_SLEEP_POLICY.attempts == 3
    assert client.requests_sent == 1 + 3
    assert len(sleeps.delays) == 2
    _assert_no_secret(info.value, secret, refresh_token)


def test_transient_then_success(zoho: ZohoSimulator) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps, policy=HttpPolicy(attempts=2))
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(Fault.HTML_503, count=1)
    grant = client.refresh(client_id, secret, refresh_token)
    assert zoho.is_access_token_valid(grant.access_token)
    assert zoho.stats.token_requests["refresh_token"] == 2
    assert len(sleeps.delays) == 1


def test_backoff_delays_are_jittered_within_the_cap(zoho: ZohoSimulator) -> None:
    policy = HttpPolicy(attempts=6, backoff_base=0.5, backoff_cap=1.5)
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps, policy=policy)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(Fault.HTTP_500, count=None)
    with pytest.raises(ZohoError):
        client.refresh(client_id, secret, refresh_token)
    ceilings = [0.5, 1.0, 1.5, 1.5, 1.5]  # base * 2**n, capped
    assert len(sleeps.delays) == len(ceilings)
    for delay, ceiling in zip(sleeps.delays, ceilings, strict=True):
        assert 0 < delay <= ceiling
    assert zoho.stats.token_requests["refresh_token"] == 6


@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.RATE_LIMIT_400])
def test_rate_limit_is_never_retried(zoho: ZohoSimulator, fault: Fault) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(fault, count=None)
    with pytest.raises(ZohoError) as info:
        client.refresh(client_id, secret, refresh_token)
    assert info.value.error_class is ErrorClass.RATE_LIMITED
    assert zoho.stats.token_requests["refresh_token"] == 1
    assert sleeps.delays == []


def test_real_mint_limit_is_rate_limited_without_retry(zoho: ZohoSimulator) -> None:
    zoho.settings.mint_limit = 2  # the exchange and one refresh fit; the next refresh is refused
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    client.refresh(client_id, secret, refresh_token)
    with pytest.raises(ZohoError) as info:
        client.refresh(client_id, secret, refresh_token)
    assert info.value.error_class is ErrorClass.RATE_LIMITED
    assert zoho.stats.token_requests["refresh_token"] == 2
    assert sleeps.delays == []


def test_revoked_refresh_token_is_revoked_after_one_request(zoho: ZohoSimulator) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.revoke(refresh_token)
    with pytest.raises(ZohoError) as info:
        client.refresh(client_id, secret, refresh_token)
    assert (info.value.error_class, info.value.code) == (ErrorClass.REVOKED, "invalid_code")
    assert zoho.stats.token_requests["refresh_token"] == 1
    assert sleeps.delays == []
    _assert_no_secret(info.value, secret, refresh_token)


def test_wrong_secret_and_unknown_client_are_misconfigured_after_one_request(zoho: ZohoSimulator) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps)
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    with pytest.raises(ZohoError) as wrong_secret:
        client.refresh(client_id, FAKE_SECRET, refresh_token)
    assert (wrong_secret.value.error_class, wrong_secret.value.code) == (
        ErrorClass.MISCONFIGURED,
        "invalid_client_secret",
    )
    with pytest.raises(ZohoError) as unknown_client:
        client.refresh(FAKE_CLIENT_ID, secret, refresh_token)
    assert (unknown_client.value.error_class, unknown_client.value.code) == (
        ErrorClass.MISCONFIGURED,
        "invalid_client",
    )
    assert "at the local accounts server" in unknown_client.value.message
    assert zoho.stats.token_requests["refresh_token"] == 2
    assert sleeps.delays == []
    for err in (wrong_secret.value, unknown_client.value):
        _assert_no_secret(err, secret, refresh_token, FAKE_SECRET)


def test_exchange_is_never_retried(zoho: ZohoSimulator) -> None:
    sleeps = Sleeps()
    client = _client(zoho.url, sleeps=sleeps, policy=HttpPolicy(attempts=5))
    client_id, secret = zoho.register_client()
    code = zoho.issue_grant_code(client_id)
    zoho.inject(Fault.HTML_503, count=None)
    with pytest.raises(ZohoError) as info:
        client.exchange_grant_code(client_id, secret, code)
    assert (info.value.error_class, info.value.code) == (ErrorClass.TRANSIENT, "zoho_unavailable")
    assert zoho.stats.token_requests["authorization_code"] == 1
    assert client.requests_sent == 1
    assert sleeps.delays == []


def test_spent_grant_code_is_grant_rejected(zoho: ZohoSimulator) -> None:
    client = _client(zoho.url)
    client_id, secret = zoho.register_client()
    code = zoho.issue_grant_code(client_id)
    client.exchange_grant_code(client_id, secret, code)
    with pytest.raises(ZohoError) as info:
        client.exchange_grant_code(client_id, secret, code)
    assert (info.value.error_class, info.value.code) == (ErrorClass.GRANT_REJECTED, "invalid_code")
    assert zoho.stats.token_requests["authorization_code"] == 2
    _assert_no_secret(info.value, code, secret)


def test_slow_server_times_out_with_the_read_timeout(zoho: ZohoSimulator) -> None:
    zoho.settings.hang_seconds = 3.0
    client = _client(zoho.url, policy=HttpPolicy(connect_timeout=1.0, read_timeout=0.2, attempts=1))
    client_id, secret, refresh_token = _bootstrap(zoho, client)
    zoho.inject(Fault.TIMEOUT)
    started = time.monotonic()
    with pytest.raises(ZohoError) as info:
        client.refresh(client_id, secret, refresh_token)
    assert time.monotonic() - started < 1.5
    assert (info.value.error_class, info.value.code) == (ErrorClass.TRANSIENT, "timeout")
    assert zoho.stats.token_requests["refresh_token"] == 1


def test_revoke_over_http(zoho: ZohoSimulator) -> None:
    client = _client(zoho.url)
    _client_id, _secret, refresh_token = _bootstrap(zoho, client)
    assert client.revoke_refresh_token(refresh_token) is True
    assert not zoho.is_refresh_token_valid(refresh_token)
    assert client.revoke_refresh_token(refresh_token) is False
    assert zoho.stats.credentials_in_query == 0
