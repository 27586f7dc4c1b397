"""Injected faults: answer the first calls of an operation with an AWS error, to test clients' retries.

``--fault OPERATION=CODE[:COUNT]`` (repeatable; env ``LOCALMAKER_FAULTS``, comma-separated) makes the
first ``COUNT`` (default 1) calls of the SageMaker or CloudWatch Logs operation ``OPERATION`` (its
``X-Amz-Target`` action, e.g. ``ListModelPackages``) fail with ``CODE`` in AWS's error shape; later
calls are served normally. The HTTP status is AWS's for the code: 500 for ``InternalFailure`` /
``InternalServerError``, 503 for ``ServiceUnavailable``, 400 otherwise (``ThrottlingException``).
Off unless given: a client never meets a fault it did not ask for.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from .errors import AwsError

_SPEC = re.compile(r"^(?P<op>[A-Z][A-Za-z0-9]+)=(?P<code>[A-Z][A-Za-z0-9]+)(?::(?P<count>\d+))?$")
_STATUS = {"InternalFailure": 500, "InternalServerError": 500, "ServiceUnavailable": 503}


class Faults:
    """The remaining injected failures per operation; thread-safe (requests are served concurrently)."""

    def __init__(self, remaining: dict[str, tuple[str, int]] | None = None) -> None:
        self._remaining = dict(remaining or {})
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """``["ListModelPackages=ThrottlingException:2", ...]``; ``ValueError`` naming a bad spec."""
        remaining: dict[str, tuple[str, int]] = {}
        for spec in specs:
            m = _SPEC.match(spec.strip())
            if not m:
                raise ValueError(f"--fault {spec!r}: expected OPERATION=CODE[:COUNT], e.g. ListModelPackages=ThrottlingException:1")
            count = int(m["count"] or 1)
            if count < 1:
                raise ValueError(f"--fault {spec!r}: COUNT must be at least 1")
            if m["op"] in remaining:
                raise ValueError(f"--fault {spec!r}: {m['op']} is given twice")
            remaining[m["op"]] = (m["code"], count)
        return cls(remaining)

    def check(self, operation: str) -> None:
        """Raise the injected error if ``operation`` has failures left (using one up)."""
        if not self._remaining:
            return
        with self._lock:
            code, left = self._remaining.get(operation, ("", 0))
            if not left:
                return
            self._remaining[operation] = (code, left - 1)
        raise AwsError(code, f"injected by localmaker --fault {operation}={code} ({left - 1} left)", _STATUS.get(code, 400))
