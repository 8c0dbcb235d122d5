"""Zoho Accounts: data centers, the accounts-URL allow-list, the token endpoint and its error taxonomy.

Zoho answers most token errors with HTTP 200 and an ``error`` field, so the status code is never trusted
on its own: every answer goes through :func:`parse_token_response`, which either returns a
:class:`TokenGrant` or raises a :class:`ZohoError` whose :class:`ErrorClass` says what the caller must do.

Example::

    client = ZohoAccountsClient(DATA_CENTERS["eu"].accounts_url)
    grant = client.refresh(client_id, client_secret, refresh_token)
    grant.expires_at  # absolute, whatever expiry form Zoho used
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import requests

# ---------------------------------------------------------------------------------------------------------
# Data centers


@dataclass(frozen=True)
class DataCenter:
    """One Zoho data center: where its token calls go and its default (CRM) API domain."""

    code: str
    accounts_url: str
    api_domain: str


DATA_CENTERS: Final[Mapping[str, DataCenter]] = MappingProxyType(
    {
        dc.code: dc
        for dc in (
            DataCenter("us", "https://accounts.zoho.com", "https://www.zohoapis.com"),
            DataCenter("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
            DataCenter("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
            DataCenter("au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
            DataCenter("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
            DataCenter("cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
            DataCenter("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
            DataCenter("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
            DataCenter("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
            DataCenter("ae", "https://accounts.zoho.ae", "https://www.zohoapis.ae"),
        )
    }
)
LOCAL_DC: Final = "local"
_HOST_TO_DC: Final = {urlsplit(dc.accounts_url).hostname: dc for dc in DATA_CENTERS.values()}
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})


class AccountsUrlNotAllowedError(ValueError):
    """The accounts URL is not a known Zoho accounts server; nothing was sent to it."""


def data_center(code: str) -> DataCenter:
    """Look up a DC by code (``eu``, ``us``, ``ca``…), with an error listing the valid codes."""
    try:
        return DATA_CENTERS[code]
    except KeyError:
        raise ValueError(
            f"unknown Zoho data center {code[:20]!r}; use one of: {', '.join(DATA_CENTERS)}"
        ) from None


def check_accounts_url(url: str, *, allow_local: bool = False) -> str:
    """Return the DC code of an allowed accounts URL, or raise :class:`AccountsUrlNotAllowedError`.

    Allowed: exactly ``https://<a known DC's accounts host>`` (no port, user info, path, query or
    fragment), and with ``allow_local`` also ``http://127.0.0.1:<port>`` / ``http://localhost:<port>``
    for the local simulation (returned as ``"local"``). Comparing the parsed host to a fixed set, in
    ASCII only, rejects look-alikes (``accounts.zoho.eu.evil.test``), user-info tricks
    (``https://accounts.zoho.eu@evil.test``) and IDN confusables.
    """
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise AccountsUrlNotAllowedError(
            "accounts URL must be a plain ASCII URL such as https://accounts.zoho.eu"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AccountsUrlNotAllowedError("accounts URL is not a valid URL") from None
    host = parts.hostname or ""
    # Exact match against the canonical form: rejects user info, paths, an empty query or fragment
    # ("https://accounts.zoho.eu?" would send the token call to "/?/oauth/v2/token") and empty ports.
    given = (url[:-1] if url.endswith("/") else url).lower()  # scheme and host are case-insensitive
    if parts.scheme == "https" and port is None and host in _HOST_TO_DC and given == f"https://{host}":
        return _HOST_TO_DC[host].code
    local = allow_local and parts.scheme == "http" and host in _LOOPBACK_HOSTS and port is not None
    if local and given == f"http://{host}:{port}":
        return LOCAL_DC
    allowed = ", ".join(dc.accounts_url for dc in DATA_CENTERS.values())
    hint = " (loopback URLs need ZOHO_ALLOW_LOCAL_ACCOUNTS=true)" if host in _LOOPBACK_HOSTS else ""
    raise AccountsUrlNotAllowedError(f"accounts URL is not a Zoho accounts server{hint}; allowed: {allowed}")


def normalise_accounts_url(url: str) -> str:
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------------------
# Error taxonomy


class ErrorClass(StrEnum):
    """What a failed token call means for the caller."""

    TRANSIENT = "transient"  # retry later (bounded); keep the last good token
    RATE_LIMITED = "rate_limited"  # back off >= 10 minutes: retrying extends Zoho's lockout
    REVOKED = "revoked"  # refresh token dead: a human must bootstrap again
    MISCONFIGURED = "misconfigured"  # wrong DC, client id or secret: fix the credentials
    GRANT_REJECTED = "grant_rejected"  # bootstrap: grant code expired/used/wrong — make a new one
    GRANT_LIMIT = "grant_limit"  # bootstrap: Zoho's grant-code/refresh-token limit — wait


class ZohoError(Exception):
    """A token call failed. ``code`` is stable (stored in the access-token secret); the message says
    what to do and never contains a credential."""

    def __init__(self, error_class: ErrorClass, code: str, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.code = code
        self.message = message
        #: False when the request never reached Zoho (so it cannot have minted a token).
        self.sent = sent


RATE_LIMIT_BACKOFF: Final = timedelta(minutes=10)
#: Codes of the TRANSIENT class: one incident may show several of them.
TRANSIENT_CODES: Final = frozenset(
    {
        "zoho_unavailable",
        "malformed_response",
        "timeout",
        "connection_error",
        "unexpected_redirect",
        "unknown_error",
    }
)
_PLAIN_CODE = re.compile(r"[A-Za-z][A-Za-z_ ]{0,39}")
_RATE_LIMIT_HINTS = ("too many requests", "throttle", "try again after")
#: What Zoho's revoke endpoint answers (HTTP 400) for a token it does not know.
_INVALID_TOKEN_ERRORS: Final = frozenset({"invalid_token", "invalid_code"})


def _rate_limited(grant: str) -> ZohoError:
    return ZohoError(
        ErrorClass.RATE_LIMITED,
        "rate_limited",
        f"Zoho refused the {grant} with 'Access Denied' (too many token requests); backing off at least "
        "10 minutes because retrying extends Zoho's block. If this repeats, look for other systems "
        "using the same refresh token.",
    )


def classify_error(error_value: str, description: str, *, grant: str, dc_hint: str) -> ZohoError:
    """Map Zoho's ``error`` field (sent with HTTP 200 or 400) to a :class:`ZohoError`."""
    exchange = grant == "authorization_code"
    lowered = error_value.strip().lower()
    if lowered == "access denied" or (lowered == "access_denied" and not exchange):
        if exchange:
            return ZohoError(
                ErrorClass.GRANT_LIMIT,
                "access_denied",
                "Zoho answered 'Access Denied' to the code exchange: a token or refresh-token limit was "
                "reached (20 refresh tokens per user and client). Revoke unused refresh tokens under "
                "Connected Apps, wait 10 minutes, then generate a new grant code.",
            )
        return _rate_limited("refresh")
    if lowered == "access_denied":
        return ZohoError(
            ErrorClass.GRANT_LIMIT,
            "access_denied",
            "Zoho's grant-code limit was reached for this client; wait 10 minutes, then generate a new code.",
        )
    if lowered == "invalid_code":
        if exchange:
            return ZohoError(
                ErrorClass.GRANT_REJECTED,
                "invalid_code",
                "The grant code is expired, already used or wrong (codes are single use and live a few "
                "minutes; a failed exchange also spends them). Generate a new one in the Zoho API "
                "console (Self Client > Generate Code) and run the bootstrap again at once.",
            )
        return ZohoError(
            ErrorClass.REVOKED,
            "invalid_code",
            "Zoho rejected the refresh token (revoked, deleted after a password change or removal under "
            "Connected Apps, or pruned when a 21st refresh token was created). Run "
            "'zoho-token bootstrap --replace' with a new grant code.",
        )
    if lowered == "invalid_client":
        return ZohoError(
            ErrorClass.MISCONFIGURED,
            "invalid_client",
            f"Zoho does not know this client id at the {dc_hint} accounts server. Self clients belong to "
            "one data center: check the DC the grant code was generated in and the client id.",
        )
    if lowered == "invalid_client_secret":
        return ZohoError(
            ErrorClass.MISCONFIGURED,
            "invalid_client_secret",
            "Zoho rejected the client secret for this client id. Copy the secret again from the API "
            "console and run the bootstrap with --replace.",
        )
    if lowered == "invalid_redirect_uri":
        return ZohoError(
            ErrorClass.MISCONFIGURED,
            "invalid_redirect_uri",
            "Zoho rejected the redirect URI; it must match the registered one exactly (use a Self Client).",
        )
    if any(hint in description.lower() for hint in _RATE_LIMIT_HINTS):
        return _rate_limited("exchange" if exchange else "refresh")
    # Echo the value only when it looks like an error code; anything else might carry a credential.
    shown = error_value if _PLAIN_CODE.fullmatch(error_value) else "(not shown)"
    return ZohoError(
        ErrorClass.TRANSIENT,
        "unknown_error",
        f"Zoho answered with an unrecognised error '{shown}'; treated as temporary and retried on the "
        "next tick with the last good token kept.",
    )


# ---------------------------------------------------------------------------------------------------------
# Token responses

#: Zoho documents one hour; a longer stated lifetime is not believed, so a wrong answer can only make
#: us refresh early, never serve a dead token.
MAX_TRUSTED_LIFETIME: Final = 3600
_MAX_PLAUSIBLE_SECONDS: Final = 86_400


@dataclass(frozen=True)
class TokenGrant:
    """A successful token answer, with the expiry made absolute."""

    access_token: str = field(repr=False)
    expires_at: datetime
    lifetime_seconds: int
    api_domain: str | None
    token_type: str
    scope: str | None
    refresh_token: str | None = field(default=None, repr=False)
    expiry_clamped: bool = False


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float | str):
            return float(value)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float range
        return None
    return None


def parse_lifetime(body: Mapping[str, Any]) -> tuple[int, bool]:
    """Seconds the token lives, from ``expires_in_sec`` if present, else ``expires_in``.

    The legacy format sent ``expires_in`` in milliseconds beside ``expires_in_sec``; a bare
    millisecond value (over a day, divisible into a plausible number of seconds) is also recognised.
    Returns ``(seconds, clamped)``; raises ``ValueError`` when there is no usable positive number.
    """
    seconds = _number(body.get("expires_in_sec"))
    if seconds is None:
        seconds = _number(body.get("expires_in"))
        if (
            seconds is not None
            and seconds > _MAX_PLAUSIBLE_SECONDS
            and 60 <= seconds / 1000 <= _MAX_PLAUSIBLE_SECONDS
        ):
            seconds = seconds / 1000
    if seconds is None or math.isnan(seconds) or seconds < 1:
        raise ValueError("no positive expires_in/expires_in_sec")
    if seconds > MAX_TRUSTED_LIFETIME:
        return MAX_TRUSTED_LIFETIME, True
    return int(seconds), False


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def parse_token_response(
    status_code: int, text: str, *, grant: str, now: datetime, dc_hint: str = "configured"
) -> TokenGrant:
    """Turn one HTTP answer of ``/oauth/v2/token`` into a grant or a classified :class:`ZohoError`."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        if status_code >= 500 or text.lstrip()[:1] == "<":
            raise ZohoError(
                ErrorClass.TRANSIENT,
                "zoho_unavailable",
                f"Zoho's accounts server answered HTTP {status_code} with a non-JSON page (outage or "
                "maintenance); the last good token is kept and the next tick retries.",
            )
        raise ZohoError(
            ErrorClass.TRANSIENT,
            "malformed_response",
            f"Zoho answered HTTP {status_code} with a body that is not a JSON object; retried on the next tick.",
        )
    error_value = body.get("error")
    if error_value is not None:
        description = body.get("error_description")
        return_error = classify_error(
            str(error_value)[:200],
            description if isinstance(description, str) else "",
            grant=grant,
            dc_hint=dc_hint,
        )
        raise return_error
    if status_code != 200:
        raise ZohoError(
            ErrorClass.TRANSIENT,
            "zoho_unavailable",
            f"Zoho's accounts server answered HTTP {status_code}; the next tick retries.",
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise ZohoError(
            ErrorClass.TRANSIENT,
            "malformed_response",
            "Zoho answered without an access_token; treated as temporary, the last good token is kept.",
        )
    try:
        lifetime, clamped = parse_lifetime(body)
    except ValueError:
        raise ZohoError(
            ErrorClass.TRANSIENT,
            "malformed_response",
            "Zoho answered without a usable expires_in; the token cannot be trusted and was not stored.",
        ) from None
    refresh_token = body.get("refresh_token")
    scope = body.get("scope")
    return TokenGrant(
        access_token=token,
        # Whole seconds, as stored: comparisons with a stored expiry must not see phantom microseconds.
        expires_at=(now + timedelta(seconds=lifetime)).replace(microsecond=0),
        lifetime_seconds=lifetime,
        api_domain=_optional_text(body, "api_domain"),
        token_type=_optional_text(body, "token_type") or "Bearer",
        scope=" ".join(scope.replace(",", " ").split()) if isinstance(scope, str) and scope.strip() else None,
        # Only the exchange creates a refresh token; a refresh answer never rotates it.
        refresh_token=refresh_token
        if grant == "authorization_code" and isinstance(refresh_token, str) and refresh_token
        else None,
        expiry_clamped=clamped,
    )


# ---------------------------------------------------------------------------------------------------------
# HTTP client


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and the bounded retry for transient failures (full-jitter exponential back-off)."""

    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    attempts: int = 2
    backoff_base: float = 0.5
    backoff_cap: float = 4.0


def _now_utc() -> datetime:
    return datetime.now(UTC)


class ZohoAccountsClient:
    """Talks to one accounts server. The allow-list is checked in the constructor, so a client for a
    disallowed URL cannot exist and nothing can be sent to it.

    Credentials travel only in the form-encoded POST body (never the URL), redirects are never
    followed, TLS verification is left on, and every request has connect and read timeouts.
    """

    def __init__(
        self,
        accounts_url: str,
        *,
        allow_local: bool = False,
        policy: HttpPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = _now_utc,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dc = check_accounts_url(accounts_url, allow_local=allow_local)
        self.accounts_url = normalise_accounts_url(accounts_url)
        self.policy = policy or HttpPolicy()
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        #: Requests that reached (or may have reached) Zoho; callers use it to count budget and calls.
        self.requests_sent = 0

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> TokenGrant:
        """``grant_type=refresh_token``: a new access token (the refresh token never rotates)."""
        return self._token_call(
            "refresh_token",
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            },
            retry=True,
        )

    def exchange_grant_code(self, client_id: str, client_secret: str, code: str) -> TokenGrant:
        """``grant_type=authorization_code`` for a self client. Never retried: a failed exchange spends
        the code, and a retry after a timeout would only answer ``invalid_code``."""
        return self._token_call(
            "authorization_code",
            {
                "grant_type": "authorization_code",
                "client_id": client_id,
                "client_secret": client_secret,
                "code": code,
            },
            retry=False,
        )

    def revoke_refresh_token(self, refresh_token: str) -> bool:
        """Revoke at Zoho. True when Zoho confirmed, False when Zoho said the token was already invalid.

        Anything else raises :class:`ZohoError`: a throttle answer is RATE_LIMITED, and any answer that
        is neither a confirmation nor an explicit invalid-token reply is TRANSIENT ("not confirmed"), so
        a caller never reports a revocation that did not happen.
        """
        response = self._post("/oauth/v2/token/revoke", {"token": refresh_token})
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        error = str(body.get("error") or "").strip().lower()
        description = str(body.get("error_description") or "").lower()
        if body.get("status") == "success" and not error:
            return True
        if error in ("access denied", "access_denied") or any(h in description for h in _RATE_LIMIT_HINTS):
            raise _rate_limited("revocation")
        if response.status_code == 400 and error in _INVALID_TOKEN_ERRORS:
            return False
        raise ZohoError(
            ErrorClass.TRANSIENT,
            "revoke_not_confirmed",
            f"Zoho's revoke endpoint answered HTTP {response.status_code} without confirming; the token may "
            "still be valid. Try again in a few minutes.",
        )

    def _token_call(self, grant: str, form: dict[str, str], *, retry: bool) -> TokenGrant:
        attempts = max(1, self.policy.attempts) if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                # Expiry counts from when the request left: Zoho's clock started no later than that.
                sent_at = self._clock()
                response = self._post("/oauth/v2/token", form)
                return parse_token_response(
                    response.status_code, response.text, grant=grant, now=sent_at, dc_hint=self.dc
                )
            except ZohoError as err:
                if err.error_class is not ErrorClass.TRANSIENT or attempt == attempts:
                    raise
            delay = min(self.policy.backoff_cap, self.policy.backoff_base * 2 ** (attempt - 1))
            self._sleep(self._random.uniform(0, delay))
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, path: str, form: dict[str, str]) -> requests.Response:
        self.requests_sent += 1
        try:
            response = self._session.post(
                self.accounts_url + path,
                data=form,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                allow_redirects=False,
                headers={"Accept": "application/json"},
            )
        except requests.Timeout:
            raise ZohoError(
                ErrorClass.TRANSIENT,
                "timeout",
                "Zoho's accounts server did not answer in time; the last good token is kept and the next tick retries.",
            ) from None
        except requests.RequestException as err:
            # The exception text can hold the URL but never the form; still, keep only its class name.
            raise ZohoError(
                ErrorClass.TRANSIENT,
                "connection_error",
                f"Could not reach Zoho's accounts server ({type(err).__name__}); the next tick retries.",
            ) from None
        if 300 <= response.status_code < 400:
            raise ZohoError(
                ErrorClass.TRANSIENT,
                "unexpected_redirect",
                f"Zoho answered with a redirect (HTTP {response.status_code}); redirects are never followed "
                "on the token endpoint.",
            )
        return response


# ---------------------------------------------------------------------------------------------------------
# Token health probe

#: API error codes that mean "this access token is not (or no longer) valid".
INVALID_TOKEN_CODES: Final = frozenset({"INVALID_TOKEN", "INVALID_OAUTHTOKEN", "AUTHENTICATION_FAILURE"})
# Each DC's accounts and API hosts minus their first label: zoho.eu, zohoapis.eu, zohocloud.ca, ...
_API_SUFFIXES: Final = frozenset(
    (urlsplit(url).hostname or "").split(".", 1)[1]
    for dc in DATA_CENTERS.values()
    for url in (dc.accounts_url, dc.api_domain)
)


class ProbeResult(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # the API says the token is invalid
    INCONCLUSIVE = "inconclusive"  # anything else: outage, 5xx, timeout, odd answer — no action taken


def check_api_domain(api_domain: str, *, allow_local: bool = False) -> None:
    """Refuse to send an access token anywhere but a Zoho domain over https (or loopback when allowed)."""
    parts = urlsplit(api_domain)
    host = parts.hostname or ""
    if parts.username or parts.password or "@" in parts.netloc or not host.isascii():
        raise AccountsUrlNotAllowedError("api_domain is not a plain Zoho API domain")
    if allow_local and parts.scheme == "http" and host in _LOOPBACK_HOSTS:
        return
    zoho_host = any(host == suffix or host.endswith("." + suffix) for suffix in _API_SUFFIXES)
    if parts.scheme != "https" or parts.port is not None or not zoho_host:
        raise AccountsUrlNotAllowedError("api_domain is not an https Zoho domain; the token was not sent")


def probe_api(
    api_domain: str,
    path: str,
    access_token: str,
    *,
    allow_local: bool = False,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = (3.05, 5.0),
) -> ProbeResult:
    """One cheap authenticated GET (e.g. ``/crm/v8/users?type=CurrentUser``) to see whether Zoho's API
    still accepts the stored token. Only an explicit invalid-token answer counts as REJECTED."""
    check_api_domain(api_domain, allow_local=allow_local)
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("health probe path must start with a single '/'")
    try:
        response = (session or requests).get(
            api_domain.rstrip("/") + path,
            headers={"Authorization": f"Zoho-oauthtoken {access_token}", "Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException:
        return ProbeResult.INCONCLUSIVE
    if 200 <= response.status_code < 300:
        return ProbeResult.OK
    try:
        body = response.json()
    except ValueError:
        return ProbeResult.INCONCLUSIVE
    code = body.get("code") if isinstance(body, dict) else None
    if response.status_code in (400, 401) and isinstance(code, str) and code.upper() in INVALID_TOKEN_CODES:
        return ProbeResult.REJECTED
    return ProbeResult.INCONCLUSIVE
