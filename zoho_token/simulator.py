"""A local stand-in for one Zoho data center's accounts server (and a sliver of its CRM API).

Operator and test tooling only: it is never packaged into the refresher Lambda. It speaks real HTTP on
``127.0.0.1`` (a free port), answers with Zoho's real response shapes (see
``/work/shared/zoho-oauth-facts.md``), enforces Zoho's token limits by a controllable clock, and can be
told to misbehave in the ways the real service does (:class:`Fault`).

Example::

    from zoho_token.simulator import SimClock, ZohoSimulator
    import requests

    clock = SimClock()
    with ZohoSimulator("eu", clock=clock) as sim:
        client_id, client_secret = sim.register_client()
        code = sim.issue_grant_code(client_id)
        body = requests.post(f"{sim.url}/oauth/v2/token", data={
            "grant_type": "authorization_code", "client_id": client_id,
            "client_secret": client_secret, "code": code}, timeout=5).json()
        clock.advance(3601)          # the access token is now dead by the simulator's clock
        assert not sim.is_access_token_valid(body["access_token"])

Where Zoho's sources disagree (mint limit, refresh-token cap) :class:`SimulatorSettings` offers every
reading; the product must behave under each of them.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import json
import secrets
import selectors
import socket
import socketserver
import string
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, NamedTuple, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Fault",
    "LogEntry",
    "SimClock",
    "SimulatorSettings",
    "SimulatorStats",
    "ZohoSimulator",
]

_JSON = "application/json;charset=UTF-8"
_RATE_LIMIT_BODY: dict[str, str] = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
    "status": "failure",
}
_REFRESH_CAP_BODY: dict[str, str] = {
    "error": "Access Denied",
    "error_description": "You have reached the maximum number of refresh tokens allowed for this client.",
    "status": "failure",
}
_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Zoho Accounts - Under Maintenance</title></head>"
    b"<body><h1>We'll be back shortly</h1><p>Zoho Accounts is undergoing scheduled maintenance."
    b"</p></body></html>"
)
# Parameters whose presence in a URL means a credential leaked into access logs and exception texts.
_QUERY_CREDENTIALS = frozenset({"client_secret", "refresh_token", "code", "token"})
_KNOWN_GRANTS = frozenset({"authorization_code", "refresh_token"})
_MAX_BODY = 64 * 1024
_REQUEST_LOG_LIMIT = 100_000


class SimClock:
    """A clock that only moves when told to; thread-safe.

    Pass it as ``clock=`` to :class:`ZohoSimulator` (and to the code under test) to run hours of
    token life in milliseconds::

        clock = SimClock(start=1_800_000_000.0)
        clock.advance(3600)
        assert clock() == 1_800_003_600.0
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (a negative value moves it back, for odd tests)."""
        with self._lock:
            self._now += seconds

    def set(self, epoch: float) -> None:
        """Jump to an absolute epoch time in seconds."""
        with self._lock:
            self._now = float(epoch)


class Fault(enum.StrEnum):
    """What the next token request(s) get instead of a normal answer (see :meth:`ZohoSimulator.inject`).

    Example::

        sim.inject(Fault.HTML_503, count=2)   # the next two token requests see a maintenance page
    """

    HTTP_500 = "http_500"
    HTML_503 = "html_503"
    TIMEOUT = "timeout"
    CONNECTION_RESET = "connection_reset"
    MALFORMED_JSON = "malformed_json"
    RATE_LIMIT = "rate_limit"
    RATE_LIMIT_400 = "rate_limit_400"
    MISSING_ACCESS_TOKEN = "missing_access_token"  # noqa: S105 - a fault name, not a secret
    ABSURD_EXPIRES_IN = "absurd_expires_in"
    UNKNOWN_ERROR = "unknown_error"
    INVALID_CLIENT = "invalid_client"
    INVALID_CODE = "invalid_code"


@dataclass
class SimulatorSettings:
    """Behaviour knobs; may be changed while the simulator runs.

    Example::

        sim = ZohoSimulator(settings=SimulatorSettings(mint_limit_mode="evict_oldest"))
        sim.settings.legacy_expiry_format = True   # takes effect on the next answer
    """

    access_token_lifetime: int = 3600
    #: True: ``expires_in`` in milliseconds plus ``expires_in_sec`` (Zoho's legacy shape).
    legacy_expiry_format: bool = False
    #: Access tokens per refresh token per ``mint_window`` seconds (sliding window; the exchange counts).
    mint_limit: int = 10
    mint_window: int = 600
    #: "deny": Access Denied until the window slides; "evict_oldest": mint, killing the oldest live token.
    mint_limit_mode: Literal["deny", "evict_oldest"] = "deny"
    #: With "deny": every refused attempt restarts a full ``mint_window`` block (the facts file's
    #: "retrying extends the block" reading). Off by default.
    mint_retry_extends_block: bool = False
    #: Live access tokens per refresh token; minting beyond it silently invalidates the oldest.
    active_token_cap: int = 15
    #: Refresh tokens per user and client.
    refresh_token_cap: int = 20
    #: "delete_oldest": the 21st silently deletes the oldest (and its access tokens); "deny": Access Denied.
    refresh_token_cap_mode: Literal["delete_oldest", "deny"] = "delete_oldest"  # noqa: S105 - a mode
    grant_code_lifetime: int = 180
    #: How long (real seconds) a TIMEOUT fault holds the connection before closing it unanswered.
    hang_seconds: float = 2.0
    #: Real delay added before every answer of the token and revoke endpoints.
    latency_seconds: float = 0.0
    #: The ``api_domain`` returned; None: the simulator's own URL, so API calls come back here.
    api_domain: str | None = None

    def __post_init__(self) -> None:
        if self.mint_limit_mode not in ("deny", "evict_oldest"):
            raise ValueError(f"mint_limit_mode must be 'deny' or 'evict_oldest': {self.mint_limit_mode!r}")
        if self.refresh_token_cap_mode not in ("delete_oldest", "deny"):
            raise ValueError(
                f"refresh_token_cap_mode must be 'delete_oldest' or 'deny': {self.refresh_token_cap_mode!r}"
            )
        for name in ("access_token_lifetime", "mint_limit", "mint_window", "active_token_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.refresh_token_cap < 1:
            raise ValueError("refresh_token_cap must be at least 1")


@dataclass
class SimulatorStats:
    """Counters, read as a snapshot through :attr:`ZohoSimulator.stats`.

    Example::

        assert sim.stats.token_requests["refresh_token"] == 3
        assert sim.stats.credentials_in_query == 0
    """

    #: Token-endpoint requests by ``grant_type`` ("missing"/"other" for absent or unknown ones).
    token_requests: Counter[str] = field(default_factory=Counter)
    #: Token-endpoint requests by ``client_id`` (faults included), to attribute calls to connections.
    token_requests_by_client: Counter[str] = field(default_factory=Counter)
    #: Access tokens created (exchange and refresh).
    mints: int = 0
    #: OAuth error answers by ``error`` value (injected faults are counted under ``faults_served`` only).
    errors_returned: Counter[str] = field(default_factory=Counter)
    faults_served: int = 0
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    api_rejections: int = 0
    #: Refresh/access tokens revoked, through the endpoint or :meth:`ZohoSimulator.revoke`.
    revokes: int = 0
    #: Requests to the token or revoke endpoint that carried a credential in the URL query string.
    credentials_in_query: int = 0


class LogEntry(NamedTuple):
    """One request, as recorded in :attr:`ZohoSimulator.request_log`; never holds secret values."""

    time: float
    path: str
    grant_type: str | None
    outcome: str


@dataclass
class _Client:
    secret: str
    refresh_tokens: list[str] = field(default_factory=list)  # oldest first


@dataclass
class _GrantCode:
    client_id: str
    scope: str
    offline: bool
    expires_at: float


@dataclass
class _RefreshToken:
    client_id: str
    scope: str
    access_tokens: list[str] = field(default_factory=list)  # oldest first
    mint_times: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


@dataclass
class _AccessToken:
    refresh_token: str | None
    expires_at: float


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = _JSON
    outcome: str = ""
    action: Literal["answer", "hang", "reset"] = "answer"


def _json_answer(status: int, payload: Mapping[str, Any], outcome: str) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), _JSON, outcome)


def _zoho_token() -> str:
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


_CLIENT_ID_ALPHABET = string.ascii_uppercase + string.digits


class ZohoSimulator:
    """One simulated Zoho data center: accounts server plus a CRM API that checks tokens.

    Clients, grant codes and tokens belong to this instance only, as they belong to one DC at Zoho: a
    client registered on another instance gets ``invalid_client`` here.

    Example::

        with ZohoSimulator("eu", clock=SimClock()) as sim:
            client_id, secret = sim.register_client()
            sim.inject(Fault.TIMEOUT)          # the next token request hangs
            ...
            assert sim.stats.faults_served == 1

    ``clock`` defaults to :func:`time.time`; pass a :class:`SimClock` to control expiry and limits.
    """

    def __init__(
        self,
        dc: str = "eu",
        *,
        clock: Callable[[], float] | None = None,
        settings: SimulatorSettings | None = None,
    ) -> None:
        self.dc = dc
        self.clock: Callable[[], float] = clock or time.time
        self.settings = settings or SimulatorSettings()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._clients: dict[str, _Client] = {}
        self._codes: dict[str, _GrantCode] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._faults: deque[list[Any]] = deque()  # [Fault, remaining count or None]
        self._stats = SimulatorStats()
        self._log: deque[LogEntry] = deque(maxlen=_REQUEST_LOG_LIMIT)
        # Every secret value ever handed out, dead or alive, so test harnesses can scan output for leaks.
        self._issued: list[str] = []
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._url: str | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ZohoSimulator:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread; returns self.

        Example::

            sim = ZohoSimulator().start()
            try:
                print(sim.url)
            finally:
                sim.stop()
        """
        if self._server is not None or self._stopped:
            raise RuntimeError("a ZohoSimulator can be started only once")
        server = _Server(self)
        self._server = server
        self._wake = socket.socketpair()
        host, port = server.server_address[:2]
        self._url = f"http://{host!s}:{port}"
        self._serve_thread = threading.Thread(
            target=self._serve, args=(server, self._wake[0]), name=f"zoho-sim-{self.dc}-{port}", daemon=True
        )
        self._serve_thread.start()
        return self

    def _serve(self, server: _Server, wake: socket.socket) -> None:
        # Instead of serve_forever(), whose polling would cost every stop() up to one poll interval,
        # the accept loop also watches a wake-up socket that stop() writes to.
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stop_event.is_set():
                for key, _events in selector.select():
                    if key.fileobj is server and not self._stop_event.is_set():
                        server.handle_request()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, cut open connections (waking any hanging fault) and close the socket.

        Idempotent; returns within about ``timeout`` seconds even if a handler misbehaves.
        """
        server = self._server
        if server is None or self._stopped:
            self._stopped = True
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        self._stop_event.set()
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"\0")
        if self._serve_thread is not None:
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            open_connections = list(self._connections.items())
        for conn, _thread in open_connections:
            # Idle keep-alive connections block their handler thread in a read; this ends the read.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if wake is not None:
            for end in wake:
                end.close()
        for _conn, thread in open_connections:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> ZohoSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the accounts URL (and, by default, the API domain)."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    # -- admin side --------------------------------------------------------------------------------

    def register_client(
        self, client_id: str | None = None, client_secret: str | None = None
    ) -> tuple[str, str]:
        """Create a self client on this DC; returns ``(client_id, client_secret)``.

        Example::

            client_id, secret = sim.register_client()     # "1000.7KQ...", 42 hex characters
        """
        if client_id is None:
            client_id = "1000." + "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(30))
        if client_secret is None:
            client_secret = secrets.token_hex(21)
        with self._lock:
            if client_id in self._clients:
                raise ValueError("client_id already registered on this simulator")
            self._clients[client_id] = _Client(secret=client_secret)
            self._issued.append(client_secret)
        return client_id, client_secret

    def issue_grant_code(
        self,
        client_id: str,
        *,
        scope: str = "ZohoCRM.modules.ALL",
        offline: bool = True,
        lifetime: int | None = None,
    ) -> str:
        """Generate a self-client grant code, single use, valid ``lifetime`` seconds by the clock.

        ``offline=False`` models a web-flow exchange that answers without a refresh token.

        Example::

            code = sim.issue_grant_code(client_id, lifetime=600)
        """
        code = _zoho_token()
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client_id on simulator {self.dc!r}")
            life = self.settings.grant_code_lifetime if lifetime is None else lifetime
            self._codes[code] = _GrantCode(client_id, scope, offline, self.clock() + life)
            self._issued.append(code)
        return code

    def inject(self, fault: Fault, count: int | None = 1) -> None:
        """Serve ``fault`` to the next ``count`` requests to ``/oauth/v2/token`` (None: until cleared).

        Faults queue up in order: ``inject(A, 2); inject(B)`` gives A, A, B, then normal answers.

        Example::

            sim.inject(Fault.RATE_LIMIT, count=None)
            ...
            sim.clear_faults()
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for 'until clear_faults()'")
        with self._lock:
            self._faults.append([Fault(fault), count])

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def revoke(self, refresh_token: str) -> None:
        """Delete a refresh token and its access tokens, as if the user removed the app.

        Raises KeyError for a token this simulator does not know (or already deleted).
        """
        with self._lock:
            if refresh_token not in self._refresh_tokens:
                raise KeyError("unknown refresh token")
            self._delete_refresh_token(refresh_token)
            self._stats.revokes += 1

    def is_access_token_valid(self, token: str) -> bool:
        """True if the access token exists, was not invalidated, and is unexpired by the clock."""
        with self._lock:
            entry = self._access_tokens.get(token)
            return entry is not None and self.clock() < entry.expires_at

    def is_refresh_token_valid(self, token: str) -> bool:
        """True if the refresh token exists (refresh tokens never expire, they are only deleted)."""
        with self._lock:
            return token in self._refresh_tokens

    def issued_secrets(self) -> list[str]:
        """Every client secret, grant code, refresh and access token this simulator ever issued.

        For leak checks: none of these may appear in logs, output or exception texts::

            assert not any(s in captured_output for s in sim.issued_secrets())
        """
        with self._lock:
            return list(self._issued)

    @property
    def stats(self) -> SimulatorStats:
        """A consistent snapshot of the counters (later requests do not change it)."""
        with self._lock:
            return copy.deepcopy(self._stats)

    @property
    def request_log(self) -> list[LogEntry]:
        """``(time, path, grant_type, outcome)`` per request, oldest first; no secrets, no query strings.

        Bounded to the latest 100,000 requests.
        """
        with self._lock:
            return list(self._log)

    # -- request handling (called from handler threads) ---------------------------------------------

    def _token_request(self, params: dict[str, str]) -> _Answer:
        grant_type = params.get("grant_type", "")
        grant_key = grant_type if grant_type in _KNOWN_GRANTS else ("missing" if not grant_type else "other")
        with self._lock:
            self._stats.token_requests[grant_key] += 1
            # Client ids are public identifiers; counting by them lets a run attribute calls to connections.
            self._stats.token_requests_by_client[params.get("client_id", "")[:80]] += 1
            fault = self._next_fault()
            if fault is not None:
                self._stats.faults_served += 1
                self._stats.faults_by_kind[fault.value] += 1
                if fault is Fault.MISSING_ACCESS_TOKEN:
                    return self._missing_access_token_answer()
                if fault is not Fault.ABSURD_EXPIRES_IN:
                    return _fault_answer(fault)
            now = self.clock()
            if grant_type == "authorization_code":
                answer = self._exchange(params, now)
            elif grant_type == "refresh_token":
                answer = self._refresh(params, now)
            elif not grant_type:
                answer = self._error("invalid_request")
            else:
                answer = self._error("unsupported_grant_type")
            if fault is Fault.ABSURD_EXPIRES_IN:
                answer = _absurd_expiry(answer)
            return answer

    def _missing_access_token_answer(self) -> _Answer:
        body = {
            "api_domain": self.settings.api_domain or self.url,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_lifetime,
        }
        return _json_answer(200, body, f"fault:{Fault.MISSING_ACCESS_TOKEN.value}")

    def _next_fault(self) -> Fault | None:
        if not self._faults:
            return None
        entry = self._faults[0]
        fault = cast(Fault, entry[0])
        if entry[1] is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                self._faults.popleft()
        return fault

    def _error(self, error: str, status: int = 200) -> _Answer:
        self._stats.errors_returned[error] += 1
        return _json_answer(status, {"error": error}, f"error:{error}")

    def _client_error(self, client_id: str, client_secret: str) -> _Answer | None:
        client = self._clients.get(client_id)
        if client is None:
            return self._error("invalid_client")
        if not secrets.compare_digest(client_secret.encode(), client.secret.encode()):
            return self._error("invalid_client_secret")
        return None

    def _exchange(self, params: dict[str, str], now: float) -> _Answer:
        code = params.get("code", "")
        # Any attempt, failed or not, uses the code up: Zoho invalidates a code whose exchange failed.
        grant = self._codes.pop(code, None) if code else None
        client_id = params.get("client_id", "")
        client_secret = params.get("client_secret", "")
        if not (client_id and client_secret and code):
            return self._error("invalid_request")
        failure = self._client_error(client_id, client_secret)
        if failure is not None:
            return failure
        if grant is None or grant.client_id != client_id or now >= grant.expires_at:
            return self._error("invalid_code")
        refresh_token: str | None = None
        if grant.offline:
            client = self._clients[client_id]
            if len(client.refresh_tokens) >= self.settings.refresh_token_cap:
                if self.settings.refresh_token_cap_mode == "deny":  # noqa: S105 - a mode, not a secret
                    self._stats.errors_returned[_REFRESH_CAP_BODY["error"]] += 1
                    return _json_answer(200, _REFRESH_CAP_BODY, "error:refresh_token_cap")
                while len(client.refresh_tokens) >= self.settings.refresh_token_cap:
                    self._delete_refresh_token(client.refresh_tokens[0])
            refresh_token = _zoho_token()
            self._issued.append(refresh_token)
            client.refresh_tokens.append(refresh_token)
            self._refresh_tokens[refresh_token] = _RefreshToken(client_id, grant.scope)
        access_token = self._mint(refresh_token, now)
        return self._token_answer(access_token, refresh_token, grant.scope)

    def _refresh(self, params: dict[str, str], now: float) -> _Answer:
        client_id = params.get("client_id", "")
        client_secret = params.get("client_secret", "")
        token = params.get("refresh_token", "")
        if not (client_id and client_secret and token):
            return self._error("invalid_request")
        failure = self._client_error(client_id, client_secret)
        if failure is not None:
            return failure
        entry = self._refresh_tokens.get(token)
        if entry is None or entry.client_id != client_id:
            return self._error("invalid_code")
        settings = self.settings
        while entry.mint_times and entry.mint_times[0] <= now - settings.mint_window:
            entry.mint_times.popleft()
        over_limit = len(entry.mint_times) >= settings.mint_limit
        if settings.mint_limit_mode == "deny" and (over_limit or now < entry.blocked_until):
            if settings.mint_retry_extends_block:
                entry.blocked_until = now + settings.mint_window
            self._stats.errors_returned[_RATE_LIMIT_BODY["error"]] += 1
            return _json_answer(200, _RATE_LIMIT_BODY, "error:rate_limit")
        if over_limit:  # "evict_oldest": the 11th in the window deletes the first still alive
            self._evict_oldest_access_token(entry)
        access_token = self._mint(token, now)
        return self._token_answer(access_token, None, entry.scope)

    def _mint(self, refresh_token: str | None, now: float) -> str:
        token = _zoho_token()
        self._issued.append(token)
        self._access_tokens[token] = _AccessToken(refresh_token, now + self.settings.access_token_lifetime)
        self._stats.mints += 1
        if refresh_token is not None:
            entry = self._refresh_tokens[refresh_token]
            entry.mint_times.append(now)
            # Expired tokens are dropped here so a 48-hour run keeps its memory flat. Tokens are kept in
            # minting order, so the expired ones sit at the front (a lifetime changed at run time can
            # leave a few behind for later; they answer as expired meanwhile).
            while entry.access_tokens and self._access_tokens[entry.access_tokens[0]].expires_at <= now:
                del self._access_tokens[entry.access_tokens.pop(0)]
            entry.access_tokens.append(token)
            while len(entry.access_tokens) > self.settings.active_token_cap:
                self._evict_oldest_access_token(entry)
        return token

    def _evict_oldest_access_token(self, entry: _RefreshToken) -> None:
        if entry.access_tokens:
            del self._access_tokens[entry.access_tokens.pop(0)]

    def _delete_refresh_token(self, refresh_token: str) -> None:
        entry = self._refresh_tokens.pop(refresh_token)
        for token in entry.access_tokens:
            self._access_tokens.pop(token, None)
        client = self._clients.get(entry.client_id)
        if client is not None and refresh_token in client.refresh_tokens:
            client.refresh_tokens.remove(refresh_token)

    def _token_answer(self, access_token: str, refresh_token: str | None, scope: str) -> _Answer:
        body: dict[str, Any] = {"access_token": access_token}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        lifetime = self.settings.access_token_lifetime
        body["scope"] = scope
        body["api_domain"] = self.settings.api_domain or self.url
        body["token_type"] = "Bearer"  # noqa: S105 - Zoho's token_type value, not a secret
        if self.settings.legacy_expiry_format:
            body["expires_in"] = lifetime * 1000
            body["expires_in_sec"] = lifetime
        else:
            body["expires_in"] = lifetime
        return _json_answer(200, body, "issued")

    def _revoke_request(self, params: dict[str, str]) -> _Answer:
        token = params.get("token", "")
        with self._lock:
            if not token:
                return self._revoke_error("invalid_request")
            if token in self._refresh_tokens:
                self._delete_refresh_token(token)
            elif token in self._access_tokens:
                at = self._access_tokens.pop(token)
                if at.refresh_token is not None and at.refresh_token in self._refresh_tokens:
                    self._refresh_tokens[at.refresh_token].access_tokens.remove(token)
            else:
                return self._revoke_error("invalid_token")
            self._stats.revokes += 1
            return _json_answer(200, {"status": "success"}, "revoked")

    def _revoke_error(self, error: str) -> _Answer:
        self._stats.errors_returned[error] += 1
        return _json_answer(400, {"status": "failure", "error": error}, f"error:{error}")

    def _api_request(self, authorization: str | None) -> _Answer:
        with self._lock:
            self._stats.api_calls += 1
            scheme, _, token = (authorization or "").strip().partition(" ")
            if scheme != "Zoho-oauthtoken" or not token.strip():
                self._stats.api_rejections += 1
                return _json_answer(
                    401,
                    _crm_error("AUTHENTICATION_FAILURE", "Authentication failed"),
                    "rejected:AUTHENTICATION_FAILURE",
                )
            entry = self._access_tokens.get(token.strip())
            if entry is None or self.clock() >= entry.expires_at:
                self._stats.api_rejections += 1
                return _json_answer(
                    401, _crm_error("INVALID_TOKEN", "invalid oauth token"), "rejected:INVALID_TOKEN"
                )
            return _json_answer(200, {"users": [{"id": "1", "full_name": "Sim User"}]}, "ok")

    def _record(self, path: str, grant_type: str | None, outcome: str) -> None:
        with self._lock:
            self._log.append(LogEntry(self.clock(), path, grant_type, outcome))

    def _count_query_credentials(self, query: Mapping[str, str]) -> None:
        if _QUERY_CREDENTIALS.intersection(query):
            with self._lock:
                self._stats.credentials_in_query += 1

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if not add:
                self._connections.pop(conn, None)
            elif self._stop_event.is_set():
                # Accepted just as stop() took its snapshot of open connections: end it here instead.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            else:
                self._connections[conn] = threading.current_thread()


def _crm_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "details": {}, "message": message, "status": "error"}


# Faults answered with a fixed response; TIMEOUT and CONNECTION_RESET act on the socket instead,
# MISSING_ACCESS_TOKEN needs the simulator's api_domain, and ABSURD_EXPIRES_IN rewrites a real answer.
_FAULT_RESPONSES: dict[Fault, tuple[int, bytes, str]] = {
    Fault.HTTP_500: (500, b"Internal Server Error", "text/plain;charset=UTF-8"),
    Fault.HTML_503: (503, _MAINTENANCE_PAGE, "text/html;charset=UTF-8"),
    Fault.MALFORMED_JSON: (200, b'{"access_token":"1000.', _JSON),
    Fault.RATE_LIMIT: (200, json.dumps(_RATE_LIMIT_BODY).encode(), _JSON),
    Fault.RATE_LIMIT_400: (400, json.dumps(_RATE_LIMIT_BODY).encode(), _JSON),
    Fault.UNKNOWN_ERROR: (200, b'{"error":"something_new"}', _JSON),
    Fault.INVALID_CLIENT: (200, b'{"error":"invalid_client"}', _JSON),
    Fault.INVALID_CODE: (200, b'{"error":"invalid_code"}', _JSON),
}


def _fault_answer(fault: Fault) -> _Answer:
    outcome = f"fault:{fault.value}"
    if fault is Fault.TIMEOUT:
        return _Answer(0, outcome=outcome, action="hang")
    if fault is Fault.CONNECTION_RESET:
        return _Answer(0, outcome=outcome, action="reset")
    status, body, content_type = _FAULT_RESPONSES[fault]
    return _Answer(status, body, content_type, outcome)


def _absurd_expiry(answer: _Answer) -> _Answer:
    if answer.status != 200:
        return answer
    body = json.loads(answer.body)
    if "access_token" not in body:
        return answer
    body["expires_in"] = 10**12
    if "expires_in_sec" in body:
        body["expires_in_sec"] = 10**12
    return _Answer(200, json.dumps(body).encode(), _JSON, "issued:absurd_expires_in")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bounds handle_request(): should a pending connection vanish between the accept loop's select and
    # the accept, the loop is back watching its wake-up socket within this many seconds.
    timeout = 0.1
    # Handler threads are tracked and joined by ZohoSimulator.stop() itself.
    block_on_close = False

    def __init__(self, simulator: ZohoSimulator) -> None:
        self.simulator = simulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (its own timeout, a reset fault, stop()) is routine here, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves a FQDN, which can stall for seconds on hosts with slow DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the refresher reuses a requests.Session
    server_version = "ZohoSimulator/1"
    disable_nagle_algorithm = True
    timeout = 30  # an abandoned keep-alive connection frees its thread eventually

    @property
    def _sim(self) -> ZohoSimulator:
        return cast(_Server, self.server).simulator

    def setup(self) -> None:
        super().setup()
        self._sim._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._sim._track(self.connection, add=False)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines carry query strings, which may hold credentials."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        sim = self._sim
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        if body is None:
            sim._record(path, None, "bad_request")
            self._send(_json_answer(411, {"error": "invalid_request"}, "bad_request"), close=True)
            return
        grant_type: str | None = None
        if path in ("/oauth/v2/token", "/oauth/v2/token/revoke"):
            if method != "POST":
                answer = _json_answer(
                    405, {"error": "invalid_request", "status": "failure"}, "method_not_allowed"
                )
            else:
                query = _first_values(parts.query)
                sim._count_query_credentials(query)
                # Zoho reads parameters from the query string too; the body wins where both are given.
                params = {**query, **_first_values(body.decode("utf-8", "replace"))}
                if path == "/oauth/v2/token":
                    raw_grant = params.get("grant_type", "")
                    grant_type = raw_grant if raw_grant in _KNOWN_GRANTS else ("other" if raw_grant else None)
                if not self._wait(sim.settings.latency_seconds):
                    self.close_connection = True
                    return
                if path == "/oauth/v2/token":
                    answer = sim._token_request(params)
                else:
                    answer = sim._revoke_request(params)
        elif path == "/crm" or path.startswith("/crm/"):
            if method == "GET":
                answer = sim._api_request(self.headers.get("Authorization"))
            else:
                answer = _json_answer(
                    405, _crm_error("METHOD_NOT_ALLOWED", "method not allowed"), "method_not_allowed"
                )
        else:
            message = "Please check if the URL trying to access is a correct one"
            answer = _json_answer(404, _crm_error("INVALID_URL_PATTERN", message), "not_found")
        sim._record(path, grant_type, answer.outcome)
        self._deliver(answer)

    def _deliver(self, answer: _Answer) -> None:
        if answer.action == "hang":
            self._wait(self._sim.settings.hang_seconds)
            self.close_connection = True
        elif answer.action == "reset":
            self._reset()
        else:
            self._send(answer)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _wait(self, seconds: float) -> bool:
        """Sleep in real time; False if the simulator stopped meanwhile."""
        if seconds <= 0:
            return not self._sim._stop_event.is_set()
        return not self._sim._stop_event.wait(seconds)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST instead of an orderly FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        # The socket's file descriptor closes only once rfile (a makefile() reference) is closed too.
        self.rfile.close()
        self.connection.close()

    def _send(self, answer: _Answer, *, close: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.status == 405:
            self.send_header("Allow", "POST" if "/oauth/" in self.path else "GET")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer.body)


def _first_values(encoded: str) -> dict[str, str]:
    """Form/query decoding keeping the first value of each key, as Zoho's servlet getParameter does."""
    return {key: values[0] for key, values in parse_qs(encoded, keep_blank_values=True).items()}
