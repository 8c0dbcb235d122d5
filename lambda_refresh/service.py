"""What one invocation does: parse the event, run the refresher, publish metrics, answer.

The refresher is built once per process from the environment (a warm container reuses its boto3 and
HTTP connection pools). :func:`reset` rebuilds it on next use; the local simulation uses it to run the
real handler on a simulated clock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lambda_refresh.models import InvalidEventError, Outcome, RefreshRequest
from lambda_refresh.observability import audit, emit_invalid_event, emit_run_metrics, logger
from lambda_refresh.refresh import Refresher, Settings
from lambda_refresh.store import SecretStore

_lock = threading.Lock()
_refresher: Refresher | None = None
_clock: Callable[[], datetime] | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _build() -> Refresher:
    import boto3
    from botocore.config import Config

    settings = Settings.from_env(os.environ)
    client = boto3.client(
        "secretsmanager",
        config=Config(
            max_pool_connections=settings.concurrency + 4,
            connect_timeout=3,
            read_timeout=10,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )
    return Refresher(
        settings, SecretStore(client, prefix=settings.prefix), clock=_clock or _utc_now, audit=audit
    )


def get_refresher() -> Refresher:
    """The process-wide refresher (built on first use; raises ``ConfigurationError`` for a bad env)."""
    global _refresher  # noqa: PLW0603 - one refresher per process, by design
    with _lock:
        if _refresher is None:
            _refresher = _build()
        return _refresher


def reset(*, clock: Callable[[], datetime] | None = None) -> None:
    """Forget the refresher so the next invocation re-reads the environment (and uses ``clock``)."""
    global _refresher, _clock  # noqa: PLW0603
    with _lock:
        _refresher = None
        _clock = clock


def process_event(event: Any, context: Any) -> dict[str, Any]:
    """Handle one invocation; returns the contract's ``{"results": [...]}``."""
    try:
        request = RefreshRequest.from_event(event)
    except InvalidEventError as err:
        # The event is logged by its shape only: a consumer may have put anything in it.
        logger.warning("rejected event", extra={"reason": str(err)})
        emit_invalid_event()
        return {"results": [], "error": {"code": "invalid_event", "message": str(err)}}
    refresher = get_refresher()

    remaining: Callable[[], float] | None = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
    results = refresher.run(request, remaining_seconds=remaining)

    now = refresher.now()
    emit_run_metrics(results, now)
    for result in results:
        if result.outcome is not Outcome.FRESH:
            logger.info(
                "connection processed",
                extra={
                    "connection": result.connection,
                    "outcome": result.outcome.value,
                    "error_code": result.error.code if result.error else None,
                    "error_message": result.error.message if result.error else None,
                    "zoho_calls": result.zoho_calls,
                },
            )
    outcomes: dict[str, int] = {}
    for result in results:
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    logger.info(
        "run complete", extra={"connections": len(results), "outcomes": outcomes, "forced": request.force}
    )
    return {"results": [r.to_json() for r in results]}
