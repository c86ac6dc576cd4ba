"""``tlsdiag watch --interface IF [--role ...] [--local-net ...] [--truststore ...]``

Single host, no Kafka: live capture and the diagnosis engine of ``tlsdiag diagnose`` in one
process; each diagnosis is printed as it happens (text, or ``--format jsonl``).  Ctrl-C /
SIGTERM summarizes the connections still open, prints their diagnoses and exits.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from typing import IO

from analyzer.config import ConfigError, build_config
from analyzer.engine import Engine
from analyzer.report import evidence_line
from proto.render import summary_to_json
from proto.text import printable
from sensor.live import LiveCaptureError
from sensor.loop import Sensor, SensorConfig
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.commands.sensor import close_hints, open_hints, open_live
from tlsdiag.status import ExitStatus

__all__ = ["main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = common.parser("watch", "Live capture and diagnosis in one process, no Kafka: each "
                      "diagnosis is printed as it happens.")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text blocks (default) or one JSON object per diagnosis")
    p.add_argument("--duration", type=common.seconds, metavar="S",
                   help="stop after this many seconds")
    return p


def format_text(d: dict) -> str:
    conn = d.get("connection") or {}
    sni = " (%s)" % conn.get("server_name") if conn.get("server_name") else ""
    head = "%s %s %-10s %s -> %s%s: %s [%s, %s confidence]" % (
        d.get("time") or "-", "FAIL" if d.get("severity") == "failure" else "warn",
        d.get("direction") or "?", conn.get("client"), conn.get("server"), sni, d.get("cause"),
        d.get("rule"), d.get("confidence"))
    # (each part on its own line: a peer's server name cannot drive the terminal or add a line)
    return "%s\n    why: %s\n    wire: %s\n    fix: %s\n" % tuple(map(printable, (
        head, d.get("explanation"), evidence_line(d), d.get("remediation"))))


def run(argv: list[str], out: IO[str]) -> int:
    started = common.start("watch", build_parser(), argv, log_base=logging.INFO)
    if isinstance(started, int):
        return started
    a, v = started
    try:
        diag = build_config(settings.diagnose_values(v))
    except ConfigError as e:
        return common.fail("watch", e)
    try:
        cap = open_live(v)
    except LiveCaptureError as e:
        return common.fail("watch", e)
    engine = Engine(diag)
    scfg = SensorConfig(sensor_id="watch/%s" % v["interface"], role=diag.role,
                        local_nets=diag.local_nets, table=settings.flow_table(v))
    warnings = v["warnings"]
    failures = 0
    sensor: Sensor

    def emit(raw: dict, certs: list) -> None:
        nonlocal failures
        s = summary_to_json(raw, sensor.summ.certs)
        ders = {c[0].hex(): c[1] for c in certs}
        engine.observe(s, ders)
        for d in engine.diagnose(s, ders):
            if d.get("severity") != "failure" and not warnings:
                continue
            failures += d.get("severity") == "failure"
            if a.format == "jsonl":
                out.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                out.write(format_text(d))
            out.flush()

    sensor = Sensor(scfg, cap, emit, hints=open_hints(v))

    def on_stop(_sig: int, _frame: object) -> None:
        sensor.stop_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    end = time.monotonic() + a.duration if a.duration else None
    lost: LiveCaptureError | None = None
    try:
        try:
            while not sensor.stop_requested and (end is None or time.monotonic() < end):
                sensor.step(0.2)
        except LiveCaptureError as e:   # the interface went away: what was read is diagnosed
            lost = e
        sensor.finish()
    finally:
        st = sensor.stats()
        log.info("watch: packets=%d pcap_drop=%d summaries=%d failures=%d%s", st["packets"],
                    st["pcap_drop"], st["summaries_emitted"], failures, _skipped(st))
        cap.close()
        close_hints(sensor.hints)
    if lost is not None:
        return common.fail("watch", lost)
    return ExitStatus.FAILURES if failures else ExitStatus.SUCCESS


#: what ``watch``'s last line says it skipped or lost, when it did (the flow table's, the
#: decoder's and the eBPF filter's counts, as the sensor's metrics have them)
_SKIP_COUNTERS = ("flows_evicted", "gaps", "reassembly_memcap", "protocol_errors",
                  "internal_errors", "syn_inside_connection", "rst_out_of_window", "ip_fragment",
                  "truncated", "malformed_l3", "malformed_l4", "emit_errors", "ebpf_flows_budget",
                  "ebpf_drop_budget", "ebpf_flows_lost", "ebpf_map_fail")


def _skipped(st: dict) -> str:
    return "".join(" %s=%d" % (k, st[k]) for k in _SKIP_COUNTERS if st.get(k))


def main(argv: list[str] | None = None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv), sys.stdout)
    except BrokenPipeError:
        return ExitStatus.SUCCESS
