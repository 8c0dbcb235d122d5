"""Read fresh Zoho OAuth access tokens from AWS Secrets Manager in consumer code.

This file is self-contained: it imports only the standard library and boto3/botocore, so a consumer
function can copy it into its own package or take it from a Lambda layer. It reads the
``{prefix}{connection}/access-token`` secret that the zoho-token-sync refresher keeps fresh and never
sees the client secret or the refresh token.

Example consumer Lambda (pass ``prefix=`` when your deployment does not use the default ``zoho/``)::

    import json, os, urllib.error, urllib.request
    from consumer import AccessToken, get_access_token, request_refresh  # or lambda_refresh.consumer

    PREFIX = os.environ.get("ZOHO_SECRET_PREFIX", "zoho/")
    DEAD = (b'"INVALID_TOKEN"', b'"INVALID_OAUTHTOKEN"')  # CRM; Accounts and other products

    def fetch(token: AccessToken, path: str) -> dict:
        req = urllib.request.Request(token.api_domain + path,
                                     headers={"Authorization": token.authorization_header})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def handler(event, context):
        token = get_access_token("crm-eu", prefix=PREFIX)
        try:
            return fetch(token, "/crm/v8/Leads?per_page=5")
        except urllib.error.HTTPError as err:  # 401 observed, 400 in Zoho's specs: check the code
            body = err.read()
            if err.code not in (400, 401) or not any(code in body for code in DEAD):
                raise
        token = request_refresh("crm-eu", invalid_token=token, prefix=PREFIX)  # env ZOHO_REFRESH_FUNCTION
        return fetch(token, "/crm/v8/Leads?per_page=5")  # retry once, never loop

Behaviour:

* ``get_access_token`` caches per ``(prefix, connection)`` in the process until
  ``expires_at - min_validity_seconds``: a warm consumer makes about one ``GetSecretValue`` per token
  lifetime. Concurrent callers for the same key share one read; other keys are not blocked.
* Status ``failing`` with a still-valid token returns the token: the refresher keeps the last good
  token while Zoho has transient trouble. ``pending`` with a valid token (one Zoho issued at
  bootstrap) is returned as well; ``pending`` without one raises :class:`TokenPendingError`.
* Status ``revoked`` or ``misconfigured`` raises even while the stored token has time left: the
  connection needs a human (revoking a refresh token also kills its access tokens).
* Every error is a :class:`ZohoTokenError` (bad arguments raise ``ValueError``); no message, ``repr``
  or ``str`` ever contains a token (``repr(AccessToken)`` shows a 12-hex sha256 fingerprint).
  botocore logs response bodies at DEBUG: importing this module sets the ``botocore.parsers`` logger to
  INFO unless the application already set a level for it, so a DEBUG root logger does not print tokens.
* ``request_refresh`` asks the refresher Lambda for a forced refresh after Zoho said a token is
  invalid. The payload carries the sha256 of the invalid token and the refresher refreshes only if that
  is still the stored token, so a stampede of consumers causes one refresh at Zoho. Inside one process,
  concurrent requests for the same invalid token share one invoke.

IAM for a consumer: ``secretsmanager:GetSecretValue`` on its access-token secret (and ``kms:Decrypt``
on the key), plus ``lambda:InvokeFunction`` on the refresher for ``request_refresh`` (the CDK
construct's ``grant_read_access_token`` and ``grant_force_refresh``).

Clients are created lazily once per process; they honour ``AWS_ENDPOINT_URL`` and
``AWS_REGION``/``AWS_DEFAULT_REGION``. Tests and special set-ups may pass their own
``secretsmanager_client``/``lambda_client``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, overload

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

__all__ = [
    "AccessToken",
    "TokenExpiredError",
    "TokenMisconfiguredError",
    "TokenPendingError",
    "TokenRefreshError",
    "TokenRevokedError",
    "TokenUnavailableError",
    "ZohoTokenError",
    "clear_cache",
    "get_access_token",
    "request_refresh",
    "use_clock",
]

_log = logging.getLogger(__name__)

# botocore.parsers logs every response body at DEBUG, and a GetSecretValue body holds the token. Unless
# the application chose a level for that one logger, keep it at INFO so DEBUG logging cannot leak it.
_botocore_parsers_log = logging.getLogger("botocore.parsers")
if _botocore_parsers_log.level == logging.NOTSET:
    _botocore_parsers_log.setLevel(logging.INFO)

DEFAULT_PREFIX = "zoho/"
REFRESH_FUNCTION_ENV = "ZOHO_REFRESH_FUNCTION"
SUPPORTED_SCHEMA = 1
_CONNECTION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_MAX_TEXT = 300  # longest piece of secret-provided text (error messages) copied into an exception


# --------------------------------------------------------------------------------------------- errors
class ZohoTokenError(Exception):
    """Base class of every error this module raises (apart from ``ValueError`` for bad arguments).

    Attributes help logging and alarms; none of them ever holds a token.
    """

    def __init__(
        self,
        message: str,
        *,
        connection: str | None = None,
        secret_name: str | None = None,
        status: str | None = None,
        error_code: str | None = None,
        aws_error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.connection = connection
        self.secret_name = secret_name
        self.status = status
        self.error_code = error_code
        self.aws_error_code = aws_error_code


class TokenRevokedError(ZohoTokenError):
    """Zoho rejected the refresh token: a human must run ``zoho-token bootstrap ... --replace``."""


class TokenMisconfiguredError(ZohoTokenError):
    """Status ``misconfigured``, a missing secret, or a secret that is not the documented JSON."""


class TokenPendingError(ZohoTokenError):
    """The connection has no token yet: it was never bootstrapped/refreshed."""


class TokenExpiredError(ZohoTokenError):
    """Even a fresh read gives a token that is expired or expires within ``min_validity_seconds``."""


class TokenUnavailableError(ZohoTokenError):
    """An AWS call failed (access denied, throttling, network); ``aws_error_code`` says which."""


class TokenRefreshError(ZohoTokenError):
    """A forced refresh could not produce a new token (refresher error, refused, busy past timeout)."""


# --------------------------------------------------------------------------------------------- token
@dataclass(frozen=True, slots=True, repr=False)
class AccessToken:
    """One access token as read from the access-token secret. ``repr``/``str`` never show the token."""

    token: str
    api_domain: str
    expires_at: datetime  # timezone-aware, UTC
    dc: str | None = None
    scope: str | None = None
    status: str = "ok"
    sha256: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", _sha256(self.token))

    @property
    def authorization_header(self) -> str:
        """Value for the ``Authorization`` header of Zoho API calls."""
        return f"Zoho-oauthtoken {self.token}"

    @property
    def fingerprint(self) -> str:
        """First 12 hex digits of the token's sha256: safe to log."""
        return self.sha256[:12]

    def valid_for(self, seconds: float = 0.0) -> bool:
        """True when the token is still valid ``seconds`` from now."""
        return _clock() + timedelta(seconds=seconds) < self.expires_at

    def __repr__(self) -> str:
        return (
            f"AccessToken(fingerprint={self.fingerprint!r}, api_domain={self.api_domain!r}, "
            f"expires_at={_iso(self.expires_at)!r}, dc={self.dc!r}, scope={self.scope!r}, "
            f"status={self.status!r})"
        )


@dataclass(frozen=True, slots=True)
class _Record:
    """A parsed, usable secret value: the token plus the refresher's error (for expiry messages)."""

    token: AccessToken
    error_code: str | None
    error_message: str | None


# ------------------------------------------------------------------------------------ client typing
class _SecretsClient(Protocol):
    def get_secret_value(self, *, SecretId: str) -> Mapping[str, Any]: ...


class _LambdaClient(Protocol):
    def invoke(
        self,
        *,
        FunctionName: str,
        InvocationType: Literal["Event", "RequestResponse", "DryRun"],
        Payload: bytes,
    ) -> Mapping[str, Any]: ...


# ------------------------------------------------------------------------------------ process state
_T = TypeVar("_T")
_Key = tuple[str, str]  # (prefix, connection)

_lock = threading.Lock()  # guards _cache and _flights; never held during I/O
_clients_lock = threading.Lock()  # guards _clients (held while a client is created)
_cache: dict[_Key, _Record] = {}
_clients: dict[str, Any] = {}


class _Flight(Generic[_T]):
    """One in-progress operation that concurrent callers with the same key wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.result: _T | None = None
        self.error: BaseException | None = None


_flights: dict[tuple[str, ...], _Flight[Any]] = {}


def _utc_now() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _utc_now


def use_clock(clock: Callable[[], datetime] | None) -> None:
    """Judge token validity by ``clock`` instead of real time (``None`` restores real time).

    For simulations on a simulated clock, such as ``zoho-token demo``; also clears the cache.
    """
    global _clock  # noqa: PLW0603 - one clock per process, like the cache it judges
    _clock = clock or _utc_now
    clear_cache()


def clear_cache() -> None:
    """Forget every cached token of this process (the next call reads the secret again)."""
    with _lock:
        _cache.clear()


def _reset_clients() -> None:
    """Drop the lazily created boto3 clients (tests that change endpoint/region env use this)."""
    with _clients_lock:
        _clients.clear()


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _default_secrets_client() -> _SecretsClient:
    with _clients_lock:
        client = _clients.get("secretsmanager")
        if client is None:
            config = Config(
                connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
            )
            client = boto3.session.Session().client("secretsmanager", region_name=_region(), config=config)
            _clients["secretsmanager"] = client
        return cast(_SecretsClient, client)


def _default_lambda_client(timeout_seconds: float) -> _LambdaClient:
    # No botocore retries: a retried synchronous invoke would run the refresher twice, and throttling
    # is handled by polling below. The read timeout follows the caller's timeout_seconds.
    read_timeout = max(1.0, float(timeout_seconds))
    name = f"lambda:{read_timeout}"
    with _clients_lock:
        client = _clients.get(name)
        if client is None:
            config = Config(
                connect_timeout=min(5.0, read_timeout),
                read_timeout=read_timeout,
                retries={"total_max_attempts": 1},
            )
            client = boto3.session.Session().client("lambda", region_name=_region(), config=config)
            _clients[name] = client
        return cast(_LambdaClient, client)


def _single_flight(
    fkey: tuple[str, ...], fn: Callable[[], _T], precheck: Callable[[], _T | None] | None = None
) -> _T:
    """Run ``fn`` once for all concurrent callers with ``fkey``; they share its result or error.

    ``precheck`` runs under the lock before joining/starting a flight (a cache lookup), so a caller
    that arrives just after a flight finished sees its result instead of starting another one.
    """
    with _lock:
        if precheck is not None:
            hit = precheck()
            if hit is not None:
                return hit
        flight = _flights.get(fkey)
        leader = flight is None
        if flight is None:
            flight = _Flight()
            _flights[fkey] = flight
    if leader:
        try:
            result = fn()
        except BaseException as err:
            flight.error = err
            raise
        else:
            flight.result = result
            flight.ok = True
            return result
        finally:  # after `else`: followers wake up only once the result or error is set
            with _lock:
                _flights.pop(fkey, None)
            flight.done.set()
    flight.done.wait()
    if flight.ok:
        return cast(_T, flight.result)
    failure = flight.error
    if isinstance(failure, ZohoTokenError):
        raise copy.copy(failure) from failure  # a copy: each thread gets its own traceback
    raise ZohoTokenError(
        f"a concurrent call for {'/'.join(fkey)} failed: {type(failure).__name__}"
    ) from failure


# ------------------------------------------------------------------------------------ helpers
def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _validate_connection(connection: object) -> str:
    if not isinstance(connection, str) or _CONNECTION_RE.fullmatch(connection) is None:
        shown = repr(connection)[:80]
        raise ValueError(
            f"invalid Zoho connection name {shown}: use 1-63 characters of lowercase letters, digits "
            "and '-', starting with a letter or digit (for example 'crm-eu')"
        )
    return connection


def _secret_name(prefix: str, connection: str) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string such as 'zoho/', not {type(prefix).__name__}")
    return f"{prefix}{connection}/access-token"


def _clean(text: object, *secrets: str) -> str | None:
    """Secret-provided free text made safe for an exception message: bounded, tokens redacted."""
    if text is None:
        return None
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "<redacted>")
    return out if len(out) <= _MAX_TEXT else out[: _MAX_TEXT - 1] + "…"


def _error_fields(raw: object, token: str) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    if isinstance(raw, Mapping):
        return _clean(raw.get("code"), token), _clean(raw.get("message"), token)
    return None, _clean(raw, token)


def _describe_error(code: str | None, message: str | None) -> str:
    if code and message:
        return f"{code}: {message}"
    return code or message or "none recorded"


# ------------------------------------------------------------------------------------ reading
def _read_record(
    client: _SecretsClient, prefix: str, connection: str, secret_name: str, *, not_cached_sha: str = ""
) -> _Record:
    """One ``GetSecretValue``, parsed. Raises the typed errors; keeps the process cache coherent.

    A token whose sha256 is ``not_cached_sha`` (the one a forced refresh replaces) is not cached.
    """
    key = (prefix, connection)
    try:
        response = client.get_secret_value(SecretId=secret_name)
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", "Unknown"))
        if code == "ResourceNotFoundException":
            raise TokenMisconfiguredError(
                f"secret {secret_name} not found (or it has no current value): deploy the stack that "
                f"creates it and run `zoho-token bootstrap --connection {connection}`; if your deployment "
                "uses another prefix, pass prefix=os.environ['ZOHO_SECRET_PREFIX']",
                connection=connection,
                secret_name=secret_name,
                aws_error_code=code,
            ) from err
        hint = {
            "AccessDeniedException": " (grant this role read access to the secret: grant_read_access_token)",
            "DecryptionFailure": " (this role needs kms:Decrypt on the secret's key)",
        }.get(code, "")
        raise TokenUnavailableError(
            f"could not read secret {secret_name}: AWS error {code}{hint}",
            connection=connection,
            secret_name=secret_name,
            aws_error_code=code,
        ) from err
    except BotoCoreError as err:
        raise TokenUnavailableError(
            f"could not read secret {secret_name}: {type(err).__name__}: {_clean(err)}",
            connection=connection,
            secret_name=secret_name,
            aws_error_code=type(err).__name__,
        ) from err

    try:
        record = _parse(response.get("SecretString"), connection, secret_name)
    except (TokenRevokedError, TokenMisconfiguredError, TokenPendingError):
        with _lock:  # the cached token is dead or unusable as well
            _cache.pop(key, None)
        raise
    if record.token.sha256 != not_cached_sha:
        with _lock:
            cached = _cache.get(key)
            # Tokens only move forward: never replace a newer cached token with an older read.
            if cached is None or cached.token.expires_at <= record.token.expires_at:
                _cache[key] = record
    return record


def _parse(secret_string: object, connection: str, secret_name: str) -> _Record:
    def misconfigured(what: str, *, status: str | None = None) -> TokenMisconfiguredError:
        return TokenMisconfiguredError(
            f"secret {secret_name} {what}; it should be the access-token JSON the refresher writes "
            f"(check `zoho-token status --connection {connection}`)",
            connection=connection,
            secret_name=secret_name,
            status=status,
        )

    if not isinstance(secret_string, str):
        raise misconfigured("has no SecretString")
    try:
        data = json.loads(secret_string)
    except ValueError:
        # `from None`: the JSON error object holds the whole document, which may contain the token.
        raise misconfigured("is not valid JSON") from None
    if not isinstance(data, dict):
        raise misconfigured("is not a JSON object")

    raw_token = data.get("access_token")
    token = raw_token if isinstance(raw_token, str) else ""
    schema = data.get("schema")
    if schema != SUPPORTED_SCHEMA:
        raise misconfigured(
            f"has schema {_clean(schema, token)}, this consumer module reads schema {SUPPORTED_SCHEMA} "
            "(update the vendored consumer.py if the refresher is newer)"
        )
    status = data.get("status")
    if not isinstance(status, str) or not status:
        raise misconfigured("has no 'status'")
    status = _clean(status, token) or ""
    error_code, error_message = _error_fields(data.get("error"), token)
    error_text = _describe_error(error_code, error_message)
    common: dict[str, Any] = {
        "connection": connection,
        "secret_name": secret_name,
        "status": status,
        "error_code": error_code,
    }

    _raise_for_status(status, bool(token), error_text, common)
    if not token:
        raise misconfigured(f"has status {status!r} but no 'access_token'", status=status)

    raw_expires = data.get("expires_at")
    try:
        if not isinstance(raw_expires, str):
            raise TypeError
        expires_at = datetime.fromisoformat(raw_expires.replace("Z", "+00:00"))
        if expires_at.tzinfo is None:
            raise TypeError
    except (TypeError, ValueError):
        raise misconfigured("has no valid ISO-8601 'expires_at'", status=status) from None
    api_domain = data.get("api_domain")
    if not isinstance(api_domain, str) or not api_domain:
        raise misconfigured("has no 'api_domain'", status=status)
    dc = data.get("dc")
    scope = data.get("scope")
    access = AccessToken(
        token=token,
        api_domain=api_domain.rstrip("/"),
        expires_at=expires_at.astimezone(UTC),
        dc=dc if isinstance(dc, str) else None,
        scope=scope if isinstance(scope, str) else None,
        status=status,
    )
    if status != "ok":
        _log.warning(
            "Zoho connection %s has status %s (error %s); token %s expires at %s",
            connection,
            status,
            error_code or "-",
            access.fingerprint,
            _iso(access.expires_at),
        )
    return _Record(access, error_code, error_message)


def _raise_for_status(status: str, has_token: bool, error_text: str, common: dict[str, Any]) -> None:
    connection, secret_name = common["connection"], common["secret_name"]
    if status == "revoked":
        raise TokenRevokedError(
            f"Zoho connection '{connection}' is revoked (Zoho rejected its refresh token; error "
            f"{error_text}). A human must re-bootstrap it: "
            f"`zoho-token bootstrap --connection {connection} --replace`",
            **common,
        )
    if status == "misconfigured":
        raise TokenMisconfiguredError(
            f"Zoho connection '{connection}' is misconfigured (secret {secret_name}; error {error_text}); "
            f"fix the credentials, e.g. `zoho-token bootstrap --connection {connection} --replace`",
            **common,
        )
    if status == "pending" and not has_token:
        raise TokenPendingError(
            f"Zoho connection '{connection}' has no access token yet (status pending in {secret_name}): "
            f"bootstrap it with `zoho-token bootstrap --connection {connection}`",
            **common,
        )


def _usable(record: _Record, min_validity_seconds: float, connection: str, secret_name: str) -> AccessToken:
    token = record.token
    if token.valid_for(min_validity_seconds):
        return token
    state = "expired at" if not token.valid_for(0) else "expires at"
    raise TokenExpiredError(
        f"the Zoho access token of connection '{connection}' (secret {secret_name}) {state} "
        f"{_iso(token.expires_at)}, within min_validity_seconds={min_validity_seconds:g}, even after a "
        f"fresh read: the refresher is not keeping it fresh (status {token.status}, error "
        f"{_describe_error(record.error_code, record.error_message)}). "
        f"See `zoho-token status --connection {connection}` and the refresher's logs",
        connection=connection,
        secret_name=secret_name,
        status=token.status,
        error_code=record.error_code,
    )


def get_access_token(
    connection: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    min_validity_seconds: int = 300,
    secretsmanager_client: _SecretsClient | None = None,
) -> AccessToken:
    """Return a Zoho access token for ``connection`` valid for at least ``min_validity_seconds``.

    Reads ``{prefix}{connection}/access-token`` (cached in-process until ``expires_at -
    min_validity_seconds``). The prefix is not read from the environment: a deployment with a custom
    prefix passes ``prefix=os.environ["ZOHO_SECRET_PREFIX"]``.

    Raises ``ValueError`` for a bad connection name; otherwise only :class:`ZohoTokenError` subclasses:
    :class:`TokenRevokedError`, :class:`TokenMisconfiguredError`, :class:`TokenPendingError`,
    :class:`TokenExpiredError`, :class:`TokenUnavailableError`.
    """
    connection = _validate_connection(connection)
    secret_name = _secret_name(prefix, connection)
    if min_validity_seconds < 0:
        raise ValueError("min_validity_seconds must be >= 0")
    key = (prefix, connection)

    def cached() -> _Record | None:
        record = _cache.get(key)
        return record if record is not None and record.token.valid_for(min_validity_seconds) else None

    def read() -> _Record:
        client = secretsmanager_client or _default_secrets_client()
        return _read_record(client, prefix, connection, secret_name)

    record = _single_flight(("read", prefix, connection), read, precheck=cached)
    return _usable(record, min_validity_seconds, connection, secret_name)


# ------------------------------------------------------------------------------------ forced refresh
@overload
def request_refresh(
    connection: str,
    *,
    invalid_token: AccessToken | str,
    function_name: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait: Literal[True] = True,
    timeout_seconds: float = 10.0,
    min_validity_seconds: int = 300,
    lambda_client: _LambdaClient | None = None,
    secretsmanager_client: _SecretsClient | None = None,
) -> AccessToken: ...


@overload
def request_refresh(
    connection: str,
    *,
    invalid_token: AccessToken | str,
    function_name: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait: Literal[False],
    timeout_seconds: float = 10.0,
    min_validity_seconds: int = 300,
    lambda_client: _LambdaClient | None = None,
    secretsmanager_client: _SecretsClient | None = None,
) -> None: ...


@overload
def request_refresh(
    connection: str,
    *,
    invalid_token: AccessToken | str,
    function_name: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait: bool = True,
    timeout_seconds: float = 10.0,
    min_validity_seconds: int = 300,
    lambda_client: _LambdaClient | None = None,
    secretsmanager_client: _SecretsClient | None = None,
) -> AccessToken | None: ...


def request_refresh(
    connection: str,
    *,
    invalid_token: AccessToken | str,
    function_name: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    wait: bool = True,
    timeout_seconds: float = 10.0,
    min_validity_seconds: int = 300,
    lambda_client: _LambdaClient | None = None,
    secretsmanager_client: _SecretsClient | None = None,
) -> AccessToken | None:
    """Ask the refresher Lambda to replace a token Zoho called invalid; return the new token.

    Invokes ``function_name`` (default: env ``ZOHO_REFRESH_FUNCTION``) with ``{"connection": ...,
    "force": true, "invalid_token_sha256": ...}``. The refresher refreshes only while that token is
    still the stored one, so many consumers reporting the same token cause one refresh at Zoho.

    ``wait=False`` sends an asynchronous (``Event``) invoke and returns ``None``. ``wait=True`` first
    re-reads the secret (someone may already have replaced the token), then invokes synchronously and
    returns the newly stored token. When the invoke is throttled (the refresher runs with reserved
    concurrency 1, so a scheduled run may hold the slot) or does not answer in time, it polls the secret
    with jittered back-off, re-invoking while throttled, until the stored token changes or
    ``timeout_seconds`` pass. With the default Lambda client ``timeout_seconds`` also bounds each
    synchronous invoke; an injected ``lambda_client`` uses its own timeouts.

    Raises :class:`TokenRefreshError` when no new token came (refresher error — only its ``errorType``
    is reported —, refresh refused, busy past the timeout, no function configured), the read errors of
    :func:`get_access_token`, and :class:`TokenUnavailableError` for AWS errors of the invoke.
    """
    connection = _validate_connection(connection)
    secret_name = _secret_name(prefix, connection)
    if isinstance(invalid_token, AccessToken):
        invalid_sha = invalid_token.sha256
    elif isinstance(invalid_token, str) and invalid_token:
        invalid_sha = _sha256(invalid_token)
    else:
        raise ValueError("invalid_token must be the AccessToken or the token string Zoho rejected")
    fn_name = function_name or os.environ.get(REFRESH_FUNCTION_ENV, "")
    if not fn_name:
        raise TokenRefreshError(
            f"no refresher function to invoke for connection '{connection}': pass function_name= or set "
            f"the {REFRESH_FUNCTION_ENV} environment variable (and grant lambda:InvokeFunction, "
            "grant_force_refresh)",
            connection=connection,
            secret_name=secret_name,
        )
    key = (prefix, connection)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.token.sha256 == invalid_sha:
            del _cache[key]

    payload = json.dumps({"connection": connection, "force": True, "invalid_token_sha256": invalid_sha})
    invoker = _Invoker(
        client=lambda_client or _default_lambda_client(timeout_seconds),
        function_name=fn_name,
        payload=payload.encode("utf-8"),
        connection=connection,
        secret_name=secret_name,
    )
    if not wait:
        invoker.invoke("Event")
        return None

    def refresh() -> _Record:
        sm_client = secretsmanager_client or _default_secrets_client()
        return _Refresh(invoker, sm_client, prefix, invalid_sha, timeout_seconds).run()

    record = _single_flight(("refresh", prefix, connection, invalid_sha, fn_name), refresh)
    return _usable(record, min_validity_seconds, connection, secret_name)


@dataclass(frozen=True, slots=True)
class _InvokeResult:
    busy: bool  # throttled or no answer in time: the refresh may happen elsewhere, poll the secret
    outcome: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class _Invoker:
    client: _LambdaClient
    function_name: str
    payload: bytes
    connection: str
    secret_name: str

    def invoke(self, invocation_type: Literal["Event", "RequestResponse"]) -> _InvokeResult:
        try:
            response = self.client.invoke(
                FunctionName=self.function_name, InvocationType=invocation_type, Payload=self.payload
            )
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", "Unknown"))
            if code == "TooManyRequestsException":
                return _InvokeResult(busy=True, outcome="throttled")
            raise TokenUnavailableError(
                f"could not invoke refresher {self.function_name} for connection '{self.connection}': "
                f"AWS error {code}",
                connection=self.connection,
                secret_name=self.secret_name,
                aws_error_code=code,
            ) from err
        except ReadTimeoutError:
            return _InvokeResult(busy=True, outcome="no answer in time")
        except BotoCoreError as err:
            raise TokenUnavailableError(
                f"could not invoke refresher {self.function_name}: {type(err).__name__}: {_clean(err)}",
                connection=self.connection,
                secret_name=self.secret_name,
                aws_error_code=type(err).__name__,
            ) from err
        if invocation_type == "Event":
            return _InvokeResult(busy=False, outcome="queued")
        body = _read_payload(response.get("Payload"))
        function_error = response.get("FunctionError")
        if function_error:
            error_type = body.get("errorType") if isinstance(body, dict) else None
            shown = _clean(error_type if isinstance(error_type, str) else function_error)
            raise TokenRefreshError(
                f"refresher {self.function_name} failed for connection '{self.connection}' with {shown} "
                "(see its logs)",
                connection=self.connection,
                secret_name=self.secret_name,
                error_code=shown,
            )
        return self._outcome(body)

    def _outcome(self, body: object) -> _InvokeResult:
        results = body.get("results") if isinstance(body, dict) else None
        for result in results if isinstance(results, list) else []:
            if isinstance(result, dict) and result.get("connection") == self.connection:
                outcome = result.get("outcome")
                code, message = _error_fields(result.get("error"), "")
                return _InvokeResult(
                    busy=False,
                    outcome=_clean(outcome) if isinstance(outcome, str) else None,
                    error_code=code or message,
                )
        return _InvokeResult(busy=False)


def _read_payload(stream: object) -> object:
    if stream is None:
        return None
    raw: object = stream.read() if hasattr(stream, "read") else stream
    if not isinstance(raw, str | bytes | bytearray) or not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


class _Refresh:
    """The ``wait=True`` forced refresh: pre-read, invoke, then poll while the refresher is busy."""

    def __init__(
        self, invoker: _Invoker, client: _SecretsClient, prefix: str, invalid_sha: str, timeout: float
    ) -> None:
        self.invoker = invoker
        self.client = client
        self.prefix = prefix
        self.invalid_sha = invalid_sha
        self.deadline = time.monotonic() + max(0.0, timeout)
        self.timeout = timeout
        self.interval = 0.2

    def _read(self) -> _Record | None:
        """A cache-bypassing read; the record if it holds a token other than the invalid one."""
        record = _read_record(
            self.client,
            self.prefix,
            self.invoker.connection,
            self.invoker.secret_name,
            not_cached_sha=self.invalid_sha,
        )
        return record if record.token.sha256 != self.invalid_sha else None

    def _sleep(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        # Equal jitter so consumers that were throttled together do not poll in lockstep.
        delay = self.interval / 2 + random.uniform(0, self.interval / 2)  # noqa: S311 - jitter only
        time.sleep(min(delay, remaining))
        self.interval = min(self.interval * 1.5, 2.0)
        return True

    def _failed(self, why: str, result: _InvokeResult) -> TokenRefreshError:
        connection = self.invoker.connection
        return TokenRefreshError(
            f"forced refresh of Zoho connection '{connection}' did not produce a new token: {why} "
            f"(refresher outcome {result.outcome or 'unknown'}, error {result.error_code or 'none'}). "
            f"See `zoho-token status --connection {connection}` and the refresher's logs",
            connection=connection,
            secret_name=self.invoker.secret_name,
            status=result.outcome,
            error_code=result.error_code,
        )

    def run(self) -> _Record:
        fresh = self._read()  # another consumer or the schedule may have replaced it already
        if fresh is not None:
            return fresh
        while True:
            result = self.invoker.invoke("RequestResponse")
            if not result.busy:
                fresh = self._read()
                if fresh is not None:
                    return fresh
                if result.outcome != "refreshed":
                    raise self._failed("the refresher ran but kept the token", result)
            # Throttled, no answer in time, or refreshed but not visible yet: poll the secret.
            while self._sleep():
                fresh = self._read()
                if fresh is not None:
                    return fresh
                if result.outcome == "throttled":
                    break  # the slot holder may be a scheduled run that leaves a fresh token alone: ask again
            else:
                raise self._failed(f"nothing changed within timeout_seconds={self.timeout:g}", result)
