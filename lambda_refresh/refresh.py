"""Decide which connections are due and refresh them, safely.

Rules (see the interface contract):

* A connection is due when it is ``pending`` or ``failing``, has no token, or its token expires within
  the margin; ``force`` makes a fresh one due too. The credentials secret is read only when due.
* ``revoked``/``misconfigured`` connections are parked: nothing is sent to Zoho until the credentials
  secret has a new version (a new bootstrap), then they recover by themselves.
* A failure never touches ``access_token``/``expires_at``; it writes ``status``/``error`` only when
  one of them changes, so a long outage costs one write, not one per tick.
* Zoho's budget: at most ``mint_budget`` token requests per connection per 10 minutes through this
  project (counted in the secret, so it holds across invocations), and a rate-limit answer parks the
  connection for at least 10 minutes.
* Writes are compare-and-swap on the version read, so a concurrent writer's newer token is never
  replaced by an older one.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lambda_refresh.models import (
    TOKEN_TYPE,
    AccessTokenState,
    ConnectionResult,
    Credentials,
    ErrorInfo,
    InvalidSecretError,
    NotBootstrappedError,
    Outcome,
    RefreshRequest,
    Status,
    fingerprint,
    format_time,
    sha256_hex,
    validate_connection_name,
)
from lambda_refresh.store import ConcurrentWriteError, SecretMissingError, SecretStore, StoreError, Versioned
from lambda_refresh.zoho import (
    DATA_CENTERS,
    LOCAL_DC,
    RATE_LIMIT_BACKOFF,
    TRANSIENT_CODES,
    AccountsUrlNotAllowedError,
    ErrorClass,
    HttpPolicy,
    ProbeResult,
    TokenGrant,
    ZohoAccountsClient,
    ZohoError,
    probe_api,
)

#: Zoho allows 10 access tokens per refresh token per 10 minutes.
ZOHO_MINT_WINDOW: Final = timedelta(minutes=10)
ZOHO_MINT_LIMIT: Final = 10
#: After a failed attempt, a forced refresh in the same container waits this long (consumer stampedes).
FAILED_ATTEMPT_COOLDOWN: Final = timedelta(seconds=60)
#: A tick that fires this much before a back-off ends still counts as after it: otherwise scheduling
#: jitter could skip a whole tick and let a due token expire.
SCHEDULE_TOLERANCE: Final = timedelta(seconds=30)
#: A new token is always probed; a fresh one again once it is this old (once per lifetime, about).
PROBE_AGE: Final = timedelta(minutes=30)
PROBE_REJECTED: Final = "token_rejected_by_api"
NOT_BOOTSTRAPPED: Final = "not_bootstrapped"
#: Connections are not started when less than this is left of the invocation: one connection's worst
#: case is two token attempts (2 x 13 s timeouts plus back-off) and a few Secrets Manager calls, and a
#: token minted but not stored before the timeout would be lost.
DEADLINE_RESERVE_SECONDS: Final = 35.0


#: Failures recorded without a Zoho answer (AWS or data problems), by the status they lead to.
_DEFAULT_ERROR_CLASS: Final = {
    Status.MISCONFIGURED: ErrorClass.MISCONFIGURED.value,
    Status.FAILING: "aws",
}


#: What Secrets Manager allows in a name, for the prefix part.
SECRET_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9/_+=.@-]{1,300}")


class ConfigurationError(ValueError):
    """The function's environment is invalid; the message names the variable and the fix."""


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high} (got {value})")
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "false").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false")


@dataclass(frozen=True)
class Settings:
    """The refresher's configuration, normally from the environment (see :meth:`from_env`)."""

    connections: tuple[str, ...]
    prefix: str = "zoho/"
    margin_seconds: int = 900
    allow_local_accounts: bool = False
    mint_budget: int = 5
    concurrency: int = 16
    http: HttpPolicy = field(default_factory=HttpPolicy)
    #: Connection -> API path for the optional token health probe (``ZOHO_HEALTH_PROBES``).
    health_probes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        raw_connections = env.get("ZOHO_CONNECTIONS", "")
        names = tuple(dict.fromkeys(n.strip() for n in raw_connections.split(",") if n.strip()))
        if not names:
            raise ConfigurationError(
                "ZOHO_CONNECTIONS is required: comma-separated connection names, e.g. crm-eu"
            )
        for name in names:
            try:
                validate_connection_name(name)
            except ValueError as err:
                raise ConfigurationError(f"ZOHO_CONNECTIONS: {err}") from None
        prefix = env.get("ZOHO_SECRET_PREFIX", "zoho/") or "zoho/"
        if not SECRET_PREFIX_PATTERN.fullmatch(prefix):
            raise ConfigurationError(
                "ZOHO_SECRET_PREFIX may use only letters, digits and /_+=.@- (up to 300 characters), e.g. zoho/"
            )
        return cls(
            connections=names,
            prefix=prefix,
            margin_seconds=_env_int(env, "REFRESH_MARGIN_SECONDS", 900, 60, 3000),
            allow_local_accounts=_env_bool(env, "ZOHO_ALLOW_LOCAL_ACCOUNTS"),
            mint_budget=_env_int(env, "ZOHO_TOKEN_BUDGET", 5, 1, ZOHO_MINT_LIMIT),
            concurrency=_env_int(env, "REFRESH_CONCURRENCY", 16, 1, 64),
            http=HttpPolicy(read_timeout=_env_int(env, "ZOHO_HTTP_TIMEOUT_SECONDS", 10, 1, 30)),
            health_probes=_parse_probes(env.get("ZOHO_HEALTH_PROBES", ""), names),
        )


def _parse_probes(raw: str, names: tuple[str, ...]) -> dict[str, str]:
    if not raw.strip():
        return {}
    example = '{"crm-eu": "/crm/v8/users?type=CurrentUser"}'
    try:
        probes = json.loads(raw)
    except (ValueError, RecursionError):
        raise ConfigurationError(f"ZOHO_HEALTH_PROBES must be a JSON object such as {example}") from None
    if not isinstance(probes, dict):
        raise ConfigurationError(f"ZOHO_HEALTH_PROBES must be a JSON object such as {example}")
    for name, path in probes.items():
        if name not in names:
            raise ConfigurationError(
                f"ZOHO_HEALTH_PROBES names {name[:70]!r}, which is not in ZOHO_CONNECTIONS"
            )
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or len(path) > 500:
            raise ConfigurationError(f"ZOHO_HEALTH_PROBES[{name!r}] must be an API path starting with '/'")
    return dict(probes)


@dataclass(frozen=True)
class AuditEvent:
    """One refresh or state change, for the audit trail (log group) — fingerprints, never values."""

    event: str  # "token_refreshed" | "status_changed"
    connection: str
    status: Status
    previous_status: Status
    token_fingerprint: str | None
    expires_at: datetime | None
    error_code: str | None
    credentials_version: str | None
    secret_version: str
    forced: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_event": self.event,
            "connection": self.connection,
            "status": self.status.value,
            "previous_status": self.previous_status.value,
            "token_fingerprint": self.token_fingerprint,
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "error_code": self.error_code,
            "credentials_version": self.credentials_version,
            "secret_version": self.secret_version,
            "forced": self.forced,
        }


@dataclass
class _Attempt:
    """What happened to one connection while it was processed (mutable scratch, one per connection)."""

    name: str
    force: bool
    zoho_calls: int = 0
    #: The first token request is already counted in the stored budget (see ``Refresher._claim``).
    claimed: bool = False
    #: The access-token state as last read or written, so the health check need not read it again.
    state: AccessTokenState | None = None

    def uncounted(self, requests_sent: int) -> int:
        """Token requests still to add to the stored budget."""
        return max(0, requests_sent - 1) if self.claimed else requests_sent


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Refresher:
    """Refreshes connections. One instance per process; safe to share between threads.

    Example::

        refresher = Refresher(Settings.from_env(os.environ), SecretStore(prefix="zoho/"))
        results = refresher.run(RefreshRequest())
    """

    def __init__(
        self,
        settings: Settings,
        store: SecretStore,
        *,
        clock: Callable[[], datetime] = _utc_now,
        audit: Callable[[AuditEvent], None] | None = None,
        client_factory: Callable[[str], ZohoAccountsClient] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self._audit = audit or (lambda _event: None)
        self._client_factory = client_factory or self._default_client
        self._lock = threading.Lock()
        self._last_failed_attempt: dict[str, datetime] = {}
        self._last_probe: dict[str, datetime] = {}

    def now(self) -> datetime:
        """The refresher's clock (real time in Lambda; simulated in the local demo)."""
        return self._clock()

    def _default_client(self, accounts_url: str) -> ZohoAccountsClient:
        return ZohoAccountsClient(
            accounts_url,
            allow_local=self.settings.allow_local_accounts,
            policy=self.settings.http,
            clock=self._clock,
        )

    # -- fleet --------------------------------------------------------------------------------------------

    def run(
        self, request: RefreshRequest, *, remaining_seconds: Callable[[], float] | None = None
    ) -> list[ConnectionResult]:
        """Process the requested connection, or every configured one, with bounded concurrency.

        One connection's failure never stops the others; results keep the configured order.
        """
        if request.connection is not None:
            if request.connection not in self.settings.connections:
                return [
                    ConnectionResult(
                        request.connection,
                        Outcome.MISCONFIGURED,
                        error=ErrorInfo(
                            "unknown_connection",
                            "this function does not manage that connection; add it to ZOHO_CONNECTIONS "
                            "(the deployment's connections list)",
                            self._clock(),
                        ),
                    )
                ]
            names: Iterable[str] = (request.connection,)
        else:
            names = self.settings.connections

        def one(name: str) -> ConnectionResult:
            if remaining_seconds is not None and remaining_seconds() < DEADLINE_RESERVE_SECONDS:
                return ConnectionResult(
                    name,
                    Outcome.SKIPPED,
                    error=ErrorInfo(
                        "deadline", "not started: the invocation was about to time out", self._clock()
                    ),
                )
            return self.refresh_connection(
                name, force=request.force, invalid_token_sha256=request.invalid_token_sha256
            )

        name_list = list(names)
        workers = max(1, min(self.settings.concurrency, len(name_list)))
        if workers == 1:
            return [one(n) for n in name_list]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
            return list(pool.map(one, name_list))

    # -- one connection -------------------------------------------------------------------------------------

    def refresh_connection(
        self, name: str, *, force: bool = False, invalid_token_sha256: str | None = None
    ) -> ConnectionResult:
        """Apply the rules to one connection. Never raises for Zoho, AWS or data problems."""
        # A consumer's invalid-token report is a forced refresh as far as Zoho's budget is concerned.
        attempt = _Attempt(name, force or invalid_token_sha256 is not None)
        try:
            result = self._refresh(attempt, invalid_token_sha256)
            if name in self.settings.health_probes and result.outcome in (Outcome.FRESH, Outcome.REFRESHED):
                result = self._check_health(attempt, result)
            return result
        except Exception as err:  # noqa: BLE001 - one connection must never stop the others
            # Only the type: an unexpected exception's text could quote data we must not log.
            return ConnectionResult(
                name,
                Outcome.FAILED,
                error=ErrorInfo(
                    "internal_error", f"unexpected {type(err).__name__}; see the function logs", self._clock()
                ),
                zoho_calls=attempt.zoho_calls,
            )

    def _refresh(self, attempt: _Attempt, invalid_token_sha256: str | None) -> ConnectionResult:
        name = attempt.name
        now = self._clock()
        try:
            current = self.store.read_access_token(name)
        except SecretMissingError as err:
            return ConnectionResult(
                name, Outcome.MISCONFIGURED, error=ErrorInfo("secret_missing", str(err), now), status=None
            )
        except InvalidSecretError as err:
            # Ours to repair: treat as never refreshed, so a successful refresh writes a valid state.
            secret_string, version_id = self.store.read_raw(self.store.access_token_name(name))
            current = Versioned(
                AccessTokenState(
                    status=Status.PENDING,
                    error=ErrorInfo("invalid_state", f"access-token secret was unreadable: {err}", now),
                ),
                version_id,
                secret_string,
            )
        except StoreError as err:
            return ConnectionResult(name, Outcome.FAILED, error=ErrorInfo(err.aws_code, str(err), now))

        state = attempt.state = current.value
        if invalid_token_sha256 is not None and (
            state.access_token is None or sha256_hex(state.access_token) != invalid_token_sha256
        ):
            # Someone already replaced the token the consumer saw rejected: nothing to do.
            return self._unchanged(name, state, Outcome.FRESH if state.status is Status.OK else None)

        parked = state.status in (Status.REVOKED, Status.MISCONFIGURED)
        if not parked and not self._is_due(state, now, attempt.force):
            return self._unchanged(name, state, Outcome.FRESH)
        if self._waiting_for_new_credentials(name, state):
            # Nothing changed since the last look: no value read, nothing sent to Zoho.
            return self._unchanged(name, state, None)

        try:
            credentials = self.store.read_credentials(name)
        except NotBootstrappedError:
            if state.status is Status.PENDING and state.access_token is None:
                return self._record_failure(
                    attempt,
                    current,
                    Status.PENDING,
                    NOT_BOOTSTRAPPED,
                    f"waiting for the operator: run 'zoho-token bootstrap --connection {name}'",
                    outcome=Outcome.PENDING,
                    credentials_version=self._credentials_version(name),
                )
            return self._record_failure(
                attempt,
                current,
                Status.MISCONFIGURED,
                NOT_BOOTSTRAPPED,
                f"credentials secret {self.store.credentials_name(name)} holds a placeholder; run "
                f"'zoho-token bootstrap --connection {name} --replace'",
                credentials_version=self._credentials_version(name),
            )
        except SecretMissingError as err:
            return self._record_failure(attempt, current, Status.MISCONFIGURED, "secret_missing", str(err))
        except InvalidSecretError as err:
            return self._record_failure(
                attempt,
                current,
                Status.MISCONFIGURED,
                "invalid_credentials",
                f"credentials secret {self.store.credentials_name(name)}: {err}; run 'zoho-token bootstrap "
                f"--connection {name} --replace'",
                credentials_version=self._credentials_version(name),
            )
        except StoreError as err:
            return self._record_failure(attempt, current, Status.FAILING, "aws_error", str(err))

        if parked and credentials.version_id == state.credentials_version:
            return self._unchanged(name, state, Outcome(state.status.value))

        refused = self._guard(attempt, state, now)
        if refused is not None:
            return refused

        if attempt.force:
            claimed = self._claim(attempt, current, now)
            if isinstance(claimed, ConnectionResult):
                return claimed
            current = claimed
            attempt.claimed = True

        creds = credentials.value
        try:
            client = self._client_for(creds)
        except (AccountsUrlNotAllowedError, ValueError) as err:
            return self._record_failure(
                attempt,
                current,
                Status.MISCONFIGURED,
                "accounts_url_not_allowed",
                f"credentials secret {self.store.credentials_name(name)}: {err}",
                credentials_version=credentials.version_id,
            )

        try:
            grant = client.refresh(creds.client_id, creds.client_secret, creds.refresh_token)
        except ZohoError as err:
            attempt.zoho_calls += client.requests_sent
            with self._lock:
                self._last_failed_attempt[name] = now
            status = {
                ErrorClass.REVOKED: Status.REVOKED,
                ErrorClass.MISCONFIGURED: Status.MISCONFIGURED,
            }.get(err.error_class, Status.FAILING)
            return self._record_failure(
                attempt,
                current,
                status,
                err.code,
                err.message,
                credentials_version=credentials.version_id,
                mint_attempts=attempt.uncounted(client.requests_sent),
                error_class=err.error_class.value,
                # Exactly the block Zoho imposes, no jitter: one refresh token has one caller here, and any
                # extra delay would skip the next 10-minute tick and let a due token expire.
                retry_not_before=now + RATE_LIMIT_BACKOFF
                if err.error_class is ErrorClass.RATE_LIMITED
                else None,
            )
        attempt.zoho_calls += client.requests_sent
        return self._store_grant(attempt, current, creds, credentials.version_id, grant, client.requests_sent)

    # -- token health probe -------------------------------------------------------------------------------

    def _check_health(self, attempt: _Attempt, result: ConnectionResult) -> ConnectionResult:
        """Probe a new token, and a fresh one once it is half an hour old (from the stored
        ``refreshed_at``, so cold starts cannot multiply probes). A rejected fresh token is replaced at
        once (budget permitting); a rejected new token is flagged, with the probe metric."""
        name = attempt.name
        now = self._clock()
        state = attempt.state or self.store.read_access_token(name).value
        if result.outcome is Outcome.FRESH:
            already_flagged = state.error is not None and state.error.code == PROBE_REJECTED
            young = state.refreshed_at is not None and now - state.refreshed_at < PROBE_AGE
            with self._lock:
                last = self._last_probe.get(name)
            if already_flagged or young or (last is not None and now - last < PROBE_AGE):
                return result
        verdict = self._probe(name, state)
        if verdict is ProbeResult.REJECTED and result.outcome is Outcome.FRESH:
            retry = _Attempt(name, force=True)
            retried = self._refresh(retry, None)
            if retried.outcome is not Outcome.REFRESHED:
                return replace(retried, probe=verdict.value)
            result = retried
            state = retry.state or self.store.read_access_token(name).value
            verdict = self._probe(name, state)
        if verdict is ProbeResult.REJECTED:
            # The token is what Zoho just issued, so it stays (status ok: the schedule keeps its normal
            # cadence instead of refreshing every tick); the error and the probe metric tell a human.
            flagged = self._record_failure(
                _Attempt(name, False),
                self.store.read_access_token(name),
                Status.OK,
                PROBE_REJECTED,
                "Zoho's API rejects a token Zoho just issued: check the connection's DC, api_domain, "
                "scopes and the health probe path",
                outcome=result.outcome,
                error_class="api_rejected",
            )
            return replace(flagged, probe=verdict.value)
        return replace(result, probe=verdict.value)

    def _probe(self, name: str, state: AccessTokenState) -> ProbeResult:
        if state.access_token is None or state.api_domain is None:
            return ProbeResult.INCONCLUSIVE
        try:
            verdict = probe_api(
                state.api_domain,
                self.settings.health_probes[name],
                state.access_token,
                allow_local=self.settings.allow_local_accounts,
            )
        except ValueError:  # includes a disallowed api_domain: nothing was sent
            verdict = ProbeResult.INCONCLUSIVE
        if verdict is not ProbeResult.INCONCLUSIVE:
            with self._lock:
                self._last_probe[name] = self._clock()
        return verdict

    # -- decisions ----------------------------------------------------------------------------------------

    def _waiting_for_new_credentials(self, name: str, state: AccessTokenState) -> bool:
        """Parked (revoked/misconfigured) or waiting for the first bootstrap, and the credentials secret
        still has the version that state was recorded from."""
        waiting = state.status in (Status.REVOKED, Status.MISCONFIGURED) or (
            state.status is Status.PENDING
            and state.error is not None
            and state.error.code == NOT_BOOTSTRAPPED
        )
        if not waiting or state.credentials_version is None:
            return False
        return self._credentials_version(name) == state.credentials_version

    def _credentials_version(self, name: str) -> str | None:
        try:
            return self.store.current_version(self.store.credentials_name(name))
        except StoreError:
            return None  # unknown: the caller falls back to reading the secret

    def _is_due(self, state: AccessTokenState, now: datetime, forced: bool) -> bool:
        if forced or state.status in (Status.PENDING, Status.FAILING):
            return True
        remaining = state.seconds_until_expiry(now)
        return remaining is None or remaining <= self.settings.margin_seconds

    def _recent_mints(self, state: AccessTokenState, now: datetime) -> tuple[datetime, ...]:
        return tuple(m for m in state.recent_mints if now - ZOHO_MINT_WINDOW < m <= now)

    def _guard(self, attempt: _Attempt, state: AccessTokenState, now: datetime) -> ConnectionResult | None:
        """Refuse a Zoho call that would exceed the budget or ignore a back-off; say why."""
        name = attempt.name
        if attempt.force and state.status is Status.FAILING:
            # The schedule retries a failing connection every tick; forced refreshes (consumers, the CLI)
            # on top would only add calls to a Zoho that is failing or throttling us.
            return self._skipped(
                name,
                state,
                "refresh_failing",
                "the last refresh failed and the schedule retries every tick; a forced refresh now would "
                "only add calls to Zoho",
                now,
            )
        if state.retry_not_before is not None and now < state.retry_not_before - SCHEDULE_TOLERANCE:
            return self._skipped(
                name,
                state,
                "rate_limited",
                f"Zoho rate-limited this refresh token; next attempt after {format_time(state.retry_not_before)}",
                now,
            )
        recent = self._recent_mints(state, now)
        if len(recent) >= self.settings.mint_budget:
            next_at = recent[-self.settings.mint_budget] + ZOHO_MINT_WINDOW
            return self._skipped(
                name,
                state,
                "budget_exhausted",
                f"{len(recent)} token requests in the last 10 minutes reached this project's share "
                f"({self.settings.mint_budget} of Zoho's {ZOHO_MINT_LIMIT}); next allowed after {format_time(next_at)}",
                now,
            )
        with self._lock:
            last_failure = self._last_failed_attempt.get(name)
        if attempt.force and last_failure is not None and now - last_failure < FAILED_ATTEMPT_COOLDOWN:
            return self._skipped(
                name,
                state,
                "cooling_down",
                f"a refresh failed {int((now - last_failure).total_seconds())} s ago; forced refreshes wait "
                f"{int(FAILED_ATTEMPT_COOLDOWN.total_seconds())} s so consumers cannot hammer Zoho",
                now,
            )
        return None

    def _claim(
        self, attempt: _Attempt, current: Versioned[AccessTokenState], now: datetime
    ) -> Versioned[AccessTokenState] | ConnectionResult:
        """Record the coming token request before sending it (compare-and-swap), so concurrent forced
        refreshes of one connection — consumers stampeding several refresher instances, or the CLI —
        make one Zoho call between them, and the budget counts it even if this process then dies."""
        state = current.value
        # A random id makes every claim's content unique: an identical write from the same base would be
        # accepted by Secrets Manager as an idempotent retry, letting two claimants through.
        claimed = state.with_changes(
            recent_mints=(*self._recent_mints(state, now), now),
            extra={**state.extra, "refresh_claim": str(uuid.uuid4())},
        )
        try:
            version = self.store.write_access_token(attempt.name, claimed, base=current)
        except ConcurrentWriteError:
            theirs = self.store.read_access_token(attempt.name).value
            if theirs.access_token != state.access_token:
                return self._unchanged(attempt.name, theirs, None)
            return self._skipped(
                attempt.name,
                theirs,
                "refresh_in_progress",
                "another refresh of this connection is under way",
                now,
            )
        return Versioned(claimed, version, claimed.to_secret_string())

    @staticmethod
    def _keep_theirs(theirs: AccessTokenState, credentials_version: str, expires_at: datetime) -> bool:
        """After losing a compare-and-swap: is the other writer's state at least as right as ours?"""
        if theirs.credentials_version != credentials_version:
            return True  # a bootstrap (new credentials) or a revoke wrote after we read
        if theirs.status in (Status.REVOKED, Status.MISCONFIGURED):
            return True  # parked by an operator or by Zoho's answer to another run: never undo that
        return (
            theirs.expires_at is not None
            and theirs.access_token is not None
            and theirs.expires_at >= expires_at
        )

    def _client_for(self, creds: Credentials) -> ZohoAccountsClient:
        client = self._client_factory(creds.accounts_url)
        known = DATA_CENTERS.get(creds.dc)
        if client.dc != LOCAL_DC and (known is None or known.code != client.dc):
            raise ValueError(
                f"dc {creds.dc[:10]!r} does not match accounts_url (a {client.dc} server); "
                "a client and its tokens belong to one data center"
            )
        return client

    # -- outcomes -----------------------------------------------------------------------------------------

    def _unchanged(self, name: str, state: AccessTokenState, outcome: Outcome | None) -> ConnectionResult:
        if outcome is None:
            outcome = {
                Status.OK: Outcome.FRESH,
                Status.FAILING: Outcome.FAILED,
                Status.PENDING: Outcome.PENDING,
                Status.REVOKED: Outcome.REVOKED,
                Status.MISCONFIGURED: Outcome.MISCONFIGURED,
            }[state.status]
        return ConnectionResult(
            name, outcome, expires_at=state.expires_at, error=state.error, status=state.status
        )

    def _skipped(
        self, name: str, state: AccessTokenState, code: str, message: str, now: datetime
    ) -> ConnectionResult:
        return ConnectionResult(
            name,
            Outcome.SKIPPED,
            expires_at=state.expires_at,
            error=ErrorInfo(code, message, now),
            status=state.status,
        )

    def _store_grant(
        self,
        attempt: _Attempt,
        current: Versioned[AccessTokenState],
        creds: Credentials,
        credentials_version: str,
        grant: TokenGrant,
        requests_sent: int,
    ) -> ConnectionResult:
        now = self._clock()
        state = current.value
        dc = DATA_CENTERS.get(creds.dc)
        new_state = state.with_changes(
            access_token=grant.access_token,
            token_type=TOKEN_TYPE,
            api_domain=grant.api_domain or creds.api_domain or (dc.api_domain if dc else None),
            dc=creds.dc,
            scope=grant.scope or creds.scope,
            expires_at=grant.expires_at,
            refreshed_at=now,
            status=Status.OK,
            error=None,
            credentials_version=credentials_version,
            recent_mints=self._recent_mints(state, now) + (now,) * attempt.uncounted(max(1, requests_sent)),
            retry_not_before=None,
        )
        base = current
        for _ in range(3):
            try:
                version = self.store.write_access_token(attempt.name, new_state, base=base)
                break
            except ConcurrentWriteError:
                # Another writer got there first (a parallel run, the CLI, a bootstrap). Keep theirs if
                # it is at least as good as ours; otherwise write ours on top of their version.
                base = self.store.read_access_token(attempt.name)
                theirs = base.value
                if self._keep_theirs(theirs, credentials_version, grant.expires_at):
                    return replace(self._unchanged(attempt.name, theirs, None), zoho_calls=attempt.zoho_calls)
                new_state = new_state.with_changes(
                    recent_mints=self._recent_mints(theirs, now) + (now,) * max(1, requests_sent)
                )
            except StoreError as err:
                # Throttled, KMS denied, the secret deleted: the new token is lost, the stored one is
                # untouched, and the next tick tries again. Reported as what it is, an AWS failure.
                return ConnectionResult(
                    attempt.name,
                    Outcome.FAILED,
                    expires_at=state.expires_at,
                    error=ErrorInfo(err.aws_code, f"storing the new token failed: {err}", now),
                    status=state.status,
                    zoho_calls=attempt.zoho_calls,
                    error_class="aws",
                )
        else:
            return ConnectionResult(
                attempt.name,
                Outcome.FAILED,
                expires_at=state.expires_at,
                error=ErrorInfo(
                    "write_conflict", "the access-token secret kept changing; retried next tick", now
                ),
                status=state.status,
                zoho_calls=attempt.zoho_calls,
            )
        attempt.state = new_state
        self._audit(
            AuditEvent(
                event="token_refreshed",
                connection=attempt.name,
                status=Status.OK,
                previous_status=state.status,
                token_fingerprint=fingerprint(grant.access_token),
                expires_at=grant.expires_at,
                error_code=None,
                credentials_version=credentials_version,
                secret_version=version,
                forced=attempt.force,
            )
        )
        return ConnectionResult(
            attempt.name,
            Outcome.REFRESHED,
            expires_at=grant.expires_at,
            status=Status.OK,
            zoho_calls=attempt.zoho_calls,
        )

    def _record_failure(
        self,
        attempt: _Attempt,
        current: Versioned[AccessTokenState],
        status: Status,
        code: str,
        message: str,
        *,
        outcome: Outcome | None = None,
        credentials_version: str | None = None,
        mint_attempts: int = 0,
        retry_not_before: datetime | None = None,
        error_class: str | None = None,
    ) -> ConnectionResult:
        """Record a failure: the token fields stay as they are; write only if status or code changed."""
        now = self._clock()
        state = current.value
        if outcome is None:
            outcome = {Status.REVOKED: Outcome.REVOKED, Status.MISCONFIGURED: Outcome.MISCONFIGURED}.get(
                status, Outcome.FAILED
            )
        # One outage can answer timeout, then 503, then a reset: for a connection already failing with a
        # transient error, another transient code is the same incident and not worth a write.
        same_error = state.error is not None and (
            state.error.code == code
            or (
                status is Status.FAILING
                and state.status is Status.FAILING
                and state.error.code in TRANSIENT_CODES
                and code in TRANSIENT_CODES
            )
        )
        if same_error and state.error is not None:
            code, message = state.error.code, state.error.message
        error = ErrorInfo(code, message, state.error.since if same_error and state.error else now)
        changed = state.status is not status or not same_error
        if changed:
            new_state = state.with_changes(
                status=status,
                error=error,
                credentials_version=credentials_version or state.credentials_version,
                recent_mints=self._recent_mints(state, now) + (now,) * mint_attempts,
                retry_not_before=retry_not_before,
            )
            try:
                version = self.store.write_access_token(attempt.name, new_state, base=current)
            except ConcurrentWriteError:
                # Someone wrote after we read (a bootstrap with new credentials, a revoke, another run):
                # what is stored now is the truth to report, not our answer to the old state.
                return replace(
                    self._unchanged(attempt.name, self.store.read_access_token(attempt.name).value, None),
                    zoho_calls=attempt.zoho_calls,
                )
            except StoreError:
                pass  # AWS failed: the next tick re-evaluates from what is stored
            else:
                self._audit(
                    AuditEvent(
                        event="status_changed",
                        connection=attempt.name,
                        status=status,
                        previous_status=state.status,
                        token_fingerprint=fingerprint(state.access_token) if state.access_token else None,
                        expires_at=state.expires_at,
                        error_code=code,
                        credentials_version=new_state.credentials_version,
                        secret_version=version,
                        forced=attempt.force,
                    )
                )
        return ConnectionResult(
            attempt.name,
            outcome,
            expires_at=state.expires_at,
            error=error,
            status=status,
            zoho_calls=attempt.zoho_calls,
            error_class=error_class or _DEFAULT_ERROR_CLASS.get(status),
        )
