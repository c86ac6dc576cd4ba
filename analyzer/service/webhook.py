"""Incident events POSTed as JSON to a URL, from a background thread."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Mapping

__all__ = ["Webhook"]

log = logging.getLogger(__name__)


class Webhook:
    """JSON POST of incident events from a thread: bounded queue, retries with exponential
    backoff, ``X-Tlsdiag-Signature: sha256=HMAC(secret, body)`` when a secret is set."""

    def __init__(self, url: str, secret: bytes | None, queue_max: int = 10_000,
                 retries: int = 5, timeout: float = 5.0) -> None:
        self.url = url
        self.secret = secret
        self.retries = retries
        self.timeout = timeout
        self.q: queue.Queue[dict[str, object]] = queue.Queue(maxsize=queue_max)
        self.sent = self.failed = self.dropped = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._t.start()

    def put(self, event: Mapping[str, object]) -> None:
        try:
            self.q.put_nowait(dict(event))
        except queue.Full:
            self.dropped += 1

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "tlsdiag-analyzer"}
        if self.secret:
            headers["X-Tlsdiag-Signature"] = "sha256=" + hmac.new(self.secret, body,
                                                                   hashlib.sha256).hexdigest()
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError("HTTP %d" % resp.status)

    def _run(self) -> None:
        while not (self._stop.is_set() and self.q.empty()):
            try:
                ev = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            body = json.dumps(ev, separators=(",", ":")).encode()
            delay = 0.5
            for attempt in range(self.retries + 1):
                try:
                    self._post(body)
                    self.sent += 1
                    break
                except Exception as exc:   # urllib raises many kinds; all mean "retry"
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("webhook: giving up on an event after %d attempts: %s",
                                    attempt + 1, exc)
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._t.join(timeout)
