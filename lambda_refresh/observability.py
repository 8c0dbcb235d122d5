"""The one Logger/Metrics/Tracer set of the refresher, with defaults in code.

Every Powertools setting can still be overridden by its usual ``POWERTOOLS_*`` variable. botocore,
boto3 and urllib3 stay at WARNING whatever the function's level: botocore logs request and response
bodies, ``SecretString`` included, at DEBUG.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from lambda_refresh.models import ConnectionResult, Outcome, Status
from lambda_refresh.refresh import AuditEvent
from lambda_refresh.telemetry import (
    CONNECTIONS_CHECKED,
    CONNECTIONS_NEEDING_ACTION,
    DEFAULT_NAMESPACE,
    DEFAULT_SERVICE,
    HEALTH_PROBE_FAILED,
    INVALID_EVENTS,
    MIN_SECONDS_UNTIL_EXPIRY,
    REFRESH_FAILED,
    REFRESH_FAILURES_BY_CLASS,
    REFRESH_SUCCEEDED,
    SECONDS_UNTIL_EXPIRY,
)

QUIET_LOGGERS: Final = ("botocore", "boto3", "urllib3", "s3transfer", "aws_xray_sdk")

SERVICE: Final = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
NAMESPACE: Final = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE

logger = Logger(service=SERVICE, level=os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


def quiet_aws_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_aws_loggers()


def audit(event: AuditEvent) -> None:
    """One structured line per refresh or state change; ``zoho-token audit`` reads these back."""
    logger.info("audit", extra=event.to_json())


def _unknown_connection(result: ConnectionResult) -> bool:
    return result.error is not None and result.error.code == "unknown_connection"


#: One invocation's metrics are added and flushed under this lock. Lambda never runs two invocations in
#: one process, but the demo, the CLI's tests and the race tests do, and Powertools' metric set is shared.
_flush_lock = threading.Lock()


def emit_invalid_event() -> None:
    with _flush_lock:
        metrics.add_metric(name=INVALID_EVENTS, unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()


def emit_run_metrics(results: Iterable[ConnectionResult], now: datetime) -> None:
    """Fleet-wide figures (for alarms) and seconds-until-expiry per connection (for the dashboard)."""
    with _flush_lock:
        _add_run_metrics(list(results), now)
        metrics.flush_metrics()


def _add_run_metrics(results: list[ConnectionResult], now: datetime) -> None:
    count = metrics.add_metric
    count(name=CONNECTIONS_CHECKED, unit=MetricUnit.Count, value=len(results))
    count(
        name=REFRESH_SUCCEEDED,
        unit=MetricUnit.Count,
        value=sum(r.outcome is Outcome.REFRESHED for r in results),
    )
    count(name=REFRESH_FAILED, unit=MetricUnit.Count, value=sum(r.outcome is Outcome.FAILED for r in results))
    parked = (Status.REVOKED, Status.MISCONFIGURED)
    # A missing secret has no status to record, but needs a human just the same; a request naming a
    # connection this function does not manage is the caller's mistake, not a connection's.
    needing_action = sum(
        r.status in parked
        or (r.status is None and r.outcome is Outcome.MISCONFIGURED and not _unknown_connection(r))
        for r in results
    )
    count(name=CONNECTIONS_NEEDING_ACTION, unit=MetricUnit.Count, value=needing_action)
    count(name=HEALTH_PROBE_FAILED, unit=MetricUnit.Count, value=sum(r.probe == "rejected" for r in results))

    # Parked connections keep their dead token's expiry; counting them would hold the nearly-expired
    # alarm on and hide a real expiry elsewhere (they have their own alarm).
    remaining = {
        r.connection: (r.expires_at - now).total_seconds()
        for r in results
        if r.expires_at is not None and r.status not in parked
    }
    if remaining:
        count(name=MIN_SECONDS_UNTIL_EXPIRY, unit=MetricUnit.Seconds, value=max(0.0, min(remaining.values())))

    by_class: dict[str, int] = {}
    for r in results:
        # Only failures that happened in this run carry an error class (parked connections do not).
        if r.error_class and r.outcome in (Outcome.FAILED, Outcome.REVOKED, Outcome.MISCONFIGURED):
            by_class[r.error_class] = by_class.get(r.error_class, 0) + 1
    for error_class, failures in sorted(by_class.items()):
        with single_metric(
            name=REFRESH_FAILURES_BY_CLASS, unit=MetricUnit.Count, value=failures, namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="ErrorClass", value=error_class)
    for connection, seconds in remaining.items():
        with single_metric(
            name=SECONDS_UNTIL_EXPIRY, unit=MetricUnit.Seconds, value=max(0.0, seconds), namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Connection", value=connection)
