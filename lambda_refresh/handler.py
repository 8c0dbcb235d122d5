"""Lambda entry point: ``lambda_refresh.handler.lambda_handler``. Thin by design; see :mod:`service`.

Metrics are flushed by :mod:`service` itself (one flush per invocation, under a lock), not by
``Metrics.log_metrics``, so in-process runs that overlap cannot steal each other's metric set.
"""

from __future__ import annotations

from typing import Any

from lambda_refresh.observability import logger, tracer
from lambda_refresh.service import process_event


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_event(event, context)
