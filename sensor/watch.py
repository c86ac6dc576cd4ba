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

from tlsdiag.status import ExitStatus

__all__ = ["main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlsdiag watch",
                                description="Live capture + diagnosis in one process (no Kafka).")
    p.add_argument("--interface", "-i", required=True)
    p.add_argument("--port", action="append", default=[], type=int, dest="ports")
    p.add_argument("--bpf")
    p.add_argument("--netns", help="open the capture inside this network namespace")
    p.add_argument("--role")
    p.add_argument("--local-net", action="append", default=[], metavar="CIDR")
    p.add_argument("--truststore")
    p.add_argument("--truststore-northbound")
    p.add_argument("--truststore-southbound")
    p.add_argument("--target", action="append", default=[], metavar="HOST:PORT=NAME")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument("--no-warnings", action="store_true")
    p.add_argument("--idle-timeout", type=int, default=30)
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def format_text(d: dict) -> str:
    from analyzer.report import evidence_line
    conn = d.get("connection") or {}
    sni = " (%s)" % conn.get("server_name") if conn.get("server_name") else ""
    head = "%s %s %-10s %s -> %s%s: %s [%s, %s confidence]" % (
        d.get("time") or "-", "FAIL" if d.get("severity") == "failure" else "warn",
        d.get("direction") or "?", conn.get("client"), conn.get("server"), sni, d.get("cause"),
        d.get("rule"), d.get("confidence"))
    return "%s\n    why: %s\n    wire: %s\n    fix: %s\n" % (
        head, d.get("explanation"), evidence_line(d), d.get("remediation"))


def run(argv: list[str], out: IO[str]) -> int:
    try:
        a = build_parser().parse_args(argv)
    except SystemExit as e:
        return ExitStatus.SUCCESS if not e.code else ExitStatus.ERROR
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from analyzer.config import ConfigError, build_config
    from analyzer.engine import Engine
    from proto.render import summary_to_json
    from sensor.live import LiveCapture, LiveCaptureError, build_bpf
    from sensor.service import Sensor, SensorConfig
    try:
        diag = build_config({"role": a.role, "local_nets": a.local_net,
                             "truststore": a.truststore,
                             "truststore_northbound": a.truststore_northbound,
                             "truststore_southbound": a.truststore_southbound,
                             "targets": a.target}, config_file=a.config)
    except ConfigError as e:
        print("tlsdiag watch: %s" % e, file=sys.stderr)
        return ExitStatus.ERROR
    bpf = build_bpf(a.ports, (), a.bpf) if (a.ports or a.bpf) else None
    try:
        cap = LiveCapture(a.interface, bpf=bpf, netns=a.netns)
    except LiveCaptureError as e:
        print("tlsdiag watch: %s" % e, file=sys.stderr)
        return ExitStatus.ERROR
    engine = Engine(diag)
    scfg = SensorConfig(interface=a.interface, kafka="-", sensor_id="watch/%s" % a.interface,
                        role=diag.role, local_nets=diag.local_nets, idle_timeout=a.idle_timeout)
    failures = 0
    sensor: Sensor

    def emit(raw: dict, certs: list) -> None:
        nonlocal failures
        s = summary_to_json(raw, sensor.summ.certs)
        ders = {c[0].hex(): c[1] for c in certs}
        engine.observe(s, ders)
        for d in engine.diagnose(s, ders):
            if d.get("severity") != "failure" and a.no_warnings:
                continue
            failures += d.get("severity") == "failure"
            if a.format == "jsonl":
                out.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                out.write(format_text(d))
            out.flush()

    sensor = Sensor(scfg, cap, emit)

    def on_stop(_sig: int, _frame: object) -> None:
        sensor.stop_requested = True
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    end = time.monotonic() + a.duration if a.duration else None
    try:
        while not sensor.stop_requested and (end is None or time.monotonic() < end):
            sensor.step(0.2)
        sensor.finish()
    finally:
        st = sensor.stats()
        log.warning("watch: packets=%d pcap_drop=%d summaries=%d failures=%d", st["packets"],
                    st["pcap_drop"], st["summaries_emitted"], failures)
        cap.close()
    return ExitStatus.FAILURES if failures else ExitStatus.SUCCESS


def main(argv: list[str] | None = None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv), sys.stdout)
    except BrokenPipeError:
        return ExitStatus.SUCCESS
