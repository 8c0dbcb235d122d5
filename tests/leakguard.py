"""Suite-wide leak guard: a test fails if any registered secret value shows up in what it printed.

Every secret a test creates (client secrets, refresh tokens, access tokens, grant codes) is registered
with :func:`register` (the simulator fixtures register everything the simulator issued). After each
test phase the captured stdout/stderr, the captured log records (the root logger runs at DEBUG during
the suite, ``log_level`` in pyproject) and the failure traceback are scanned for those values.
Powertools' logger writes through its own handler, so :func:`leak_capture` also mirrors the
refresher's log lines, formatted exactly as Lambda would print them, into the scan.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Generator, Iterable
from typing import Any

import pytest

_lock = threading.Lock()
_secrets: set[str] = set()
_service_stream = io.StringIO()
#: Values shorter than this are too likely to occur by chance in unrelated text.
MIN_SECRET_LENGTH = 8


def register(*values: str | None) -> None:
    """Register secret values; the current and every later test fails if they are ever printed."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def register_all(values: Iterable[str]) -> None:
    register(*values)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def find_leaks(text: str) -> list[str]:
    """Fingerprints (never the values) of the registered secrets that occur in ``text``."""
    import hashlib

    return [hashlib.sha256(s.encode()).hexdigest()[:12] for s in registered() if s in text]


def _mirror_service_logger() -> None:
    """Copy Powertools' handler for the refresher's logger so its lines are scanned too."""
    try:
        from lambda_refresh.observability import logger as service_logger
    except ImportError:  # pragma: no cover - the package is always importable in this repo
        return
    inner = logging.getLogger(service_logger.name)
    if any(getattr(h, "_leakguard", False) for h in inner.handlers):
        return
    template = next((h for h in inner.handlers if h.formatter is not None), None)
    mirror = logging.StreamHandler(_service_stream)
    mirror._leakguard = True  # type: ignore[attr-defined]
    if template is not None:
        mirror.setFormatter(template.formatter)
    inner.addHandler(mirror)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    texts = [content for _name, content in report.sections]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    texts.append(_service_stream.getvalue())
    if call.when == "teardown":
        _service_stream.seek(0)
        _service_stream.truncate()
    leaks = sorted({fp for text in texts for fp in find_leaks(text)})
    if leaks:
        report.outcome = "failed"
        message = (
            f"secret value(s) leaked into captured output during {call.when}: fingerprints {', '.join(leaks)} "
            "(the values are not shown)"
        )
        report.longrepr = message if report.longrepr is None else f"{message}\n\n[original report withheld]"


@pytest.fixture(autouse=True)
def leak_capture() -> None:
    """Ensure the refresher's Powertools logger is mirrored into the scan for every test."""
    _mirror_service_logger()
