"""Prometheus text exposition (format 0.0.4) over a tiny ``http.server`` in a daemon thread.

The service hands a callable returning ``[(name, type, help, value_or_{labels_tuple: value})]``;
it is called on every scrape, so counters are read where they live.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MetricsServer", "render"]

log = logging.getLogger(__name__)

Metric = tuple  # (name, "counter"|"gauge", help, value | {((k, v), ...): value})


def _esc(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(metrics: Iterable[Metric]) -> str:
    lines = []
    for name, kind, text, value in metrics:
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        if isinstance(value, dict):
            for labels, v in sorted(value.items()):
                lab = ",".join('%s="%s"' % (k, _esc(x)) for k, x in labels)
                lines.append("%s{%s} %s" % (name, lab, _num(v)))
        else:
            lines.append("%s %s" % (name, _num(value)))
    return "\n".join(lines) + "\n"


def _num(v: object) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(int(v)) if isinstance(v, (int, bool)) else "NaN"


class MetricsServer:
    """``GET /metrics`` -> :func:`render` of ``collect()``.  ``port=0`` picks a free port."""

    def __init__(self, collect: Callable[[], Iterable[Metric]], port: int,
                 host: str = "0.0.0.0") -> None:
        collect_ = collect

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:   # noqa: N802 - http.server API
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                try:
                    body = render(collect_()).encode()
                except Exception:
                    log.exception("metrics collection failed")
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("metrics: " + fmt, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._t = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._t.start()
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
