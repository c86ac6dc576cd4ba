"""Waiting for something to happen in a test: poll a condition, never sleep a fixed time."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(pred: Callable[[], T], timeout: float, what: str, poll: float = 0.25) -> T:
    """``pred()``'s first truthy value within ``timeout`` seconds, polled every ``poll`` s;
    AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError("timed out waiting for %s" % what)


#: the line ``tlsdiag sensor`` logs once its capture, publisher and metrics server are all up
#: (the capture's own "capturing on lo (linktype ...)" comes before the other two: a test that
#: read the metrics, or sent traffic, after that one could find the port not yet open)
SENSOR_READY = re.compile(r"sensor \S+ capturing on \S+ -> ")


def sensor_ready(text: str) -> bool:
    """Whether a ``tlsdiag sensor`` log (``text``) says it is up (:data:`SENSOR_READY`)."""
    return SENSOR_READY.search(text) is not None
