"""Waiting for something to happen in a test: poll a condition, never sleep a fixed time."""
from __future__ import annotations

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
