"""Metric names and the alarm rules built on them: one definition for the handler that emits the
metrics, the CDK construct that alarms on them and the local demo that evaluates the same alarms.

Standard library only, so the CDK app and the demo can import it without the Lambda's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

DEFAULT_SERVICE: Final = "zoho-token-sync"
DEFAULT_NAMESPACE: Final = "ZohoTokenSync"
#: The schedule's period; alarm periods are one tick so each scheduled run is one datapoint.
TICK_SECONDS: Final = 600

# Fleet-wide metrics: dimension ``service`` only.
CONNECTIONS_CHECKED: Final = "ConnectionsChecked"
INVALID_EVENTS: Final = "InvalidEvents"
REFRESH_SUCCEEDED: Final = "RefreshSucceeded"
REFRESH_FAILED: Final = "RefreshFailed"
CONNECTIONS_NEEDING_ACTION: Final = "ConnectionsNeedingAction"
HEALTH_PROBE_FAILED: Final = "HealthProbeFailed"
MIN_SECONDS_UNTIL_EXPIRY: Final = "MinSecondsUntilExpiry"
# Dimensions ``service`` + ``ErrorClass``.
REFRESH_FAILURES_BY_CLASS: Final = "RefreshFailuresByClass"
# Dimensions ``service`` + ``Connection``.
SECONDS_UNTIL_EXPIRY: Final = "SecondsUntilExpiry"


@dataclass(frozen=True)
class AlarmRule:
    """A CloudWatch alarm on one fleet-wide metric, evaluated over ``datapoints_of`` ticks."""

    name: str
    metric: str
    statistic: Literal["Sum", "Maximum", "Minimum"]
    comparison: Literal["GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold"]
    threshold: float
    datapoints_to_alarm: int
    evaluation_periods: int
    missing_data_breaching: bool
    why: str
    #: The threshold is written for a 10-minute tick and scales with the schedule (e.g. "one tick left").
    scales_with_tick: bool = False

    def threshold_for(self, tick_seconds: float) -> float:
        """The threshold for a schedule of ``tick_seconds``."""
        return self.threshold * tick_seconds / TICK_SECONDS if self.scales_with_tick else self.threshold

    def breaches(self, value: float | None, tick_seconds: float = TICK_SECONDS) -> bool:
        if value is None:
            return self.missing_data_breaching
        threshold = self.threshold_for(tick_seconds)
        if self.comparison == "GreaterThanOrEqualToThreshold":
            return value >= threshold
        return value <= threshold


ALARM_RULES: Final = (
    AlarmRule(
        "RefreshFailures",
        REFRESH_FAILED,
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1,
        2,
        3,
        False,
        "refreshes failed in 2 of the last 3 ticks: one transient blip does not page, a pattern does",
    ),
    AlarmRule(
        "ConnectionNeedsAction",
        CONNECTIONS_NEEDING_ACTION,
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        1,
        1,
        1,
        False,
        "a connection is revoked or misconfigured: only a human (a new bootstrap) can fix it",
    ),
    AlarmRule(
        "TokenNearlyExpired",
        MIN_SECONDS_UNTIL_EXPIRY,
        "Minimum",
        "LessThanOrEqualToThreshold",
        TICK_SECONDS,
        1,
        1,
        True,
        "after a run some token has at most one tick left: the next tick is its last chance; no data "
        "means the refresher is not running, which is as bad",
        scales_with_tick=True,
    ),
    AlarmRule(
        "HealthProbeFailed",
        HEALTH_PROBE_FAILED,
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1,
        1,
        1,
        False,
        "Zoho's API rejected a stored token that had not expired (revoked, pruned or evicted)",
    ),
)
