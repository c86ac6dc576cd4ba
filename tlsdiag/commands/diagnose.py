"""``tlsdiag diagnose FILE... [options]``: name the cause of every failed handshake in captures.

Input: pcap/pcapng files (through the sensor pipeline), or JSONL summary files (``*.jsonl``, as written by
``tlsdiag summarize --format jsonl``; a line may also be ``{"summary": {...}, "certs": {sha256: base64-DER}}``).
Exit status: 0 no failures, 1 failures diagnosed, 2 usage or input error, 3 internal error (a bug).
"""

from __future__ import annotations

import argparse
import base64
import functools
import heapq
import json
import logging
import os
import sys
from collections import Counter
from typing import IO, Iterator, Sequence

from analyzer.config import ConfigError, build_config
from analyzer.engine import Engine, Meter
from analyzer.parallel import JobsError, WorkerFailed, fold_windows
from analyzer.profiles import ProfileError
from analyzer.report import Grouper, json_bytes, render, want_colour
from sensor.capture import CaptureError
from sensor.pipeline import summarize_paths
from tlsdiag import settings
from tlsdiag.commands import common
from tlsdiag.commands.summarize import jobs_count, tune_gc_for_batch, tune_malloc_for_batch
from tlsdiag.status import ExitStatus

log = logging.getLogger(__name__)

SUCCESS, FAILURES, ERROR, ERROR_CTRL_C = (ExitStatus.SUCCESS, ExitStatus.FAILURES, ExitStatus.ERROR,
                                          ExitStatus.ERROR_CTRL_C)
MAX_JSONL_LINE = 16 * 1024 * 1024


class InputError(Exception):
    """A capture or summary file that cannot be read (one-line message)."""


def build_parser() -> argparse.ArgumentParser:
    p = common.parser("diagnose", "Name the cause of every failed TLS handshake in captures, "
                      "with evidence and the fix for its direction.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap/pcapng capture(s) (- for standard input), or .jsonl summaries")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="report (default) or one JSON per line")
    p.add_argument("--profiles-load", metavar="FILE", help="load learned server profiles first")
    p.add_argument("--profiles-save", metavar="FILE", help="save learned server profiles afterwards")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text report (auto: on a terminal unless NO_COLOR is set)")
    p.add_argument("--jobs", type=jobs_count, default=1, metavar="N",
                   help="summarize each capture's connections in N worker processes, then "
                        "diagnose them in N, split by server (same output; auto: one per CPU this "
                        "process may use; default 1)")
    return p


def _without_bytes(summary: dict[str, object], certs: dict[str, bytes]) -> bool:
    """A summary whose certificates came without their DER (a plain ``summarize --format jsonl`` line)."""
    for key in ("certificates", "client_certificates"):
        facts = summary.get(key)
        if isinstance(facts, list) and any(isinstance(f, dict) and str(f.get("sha256")) not in certs
                                           and not f.get("error") for f in facts):
            return True
    return False


def _read_jsonl(path: str, counts: Counter[str] | None = None,
                meter: Meter | None = None) -> Iterator[tuple[dict[str, object], dict[str, bytes]]]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    with f:
        n = 0
        while True:
            n += 1
            try:        # (at most one byte past the limit is read: a line without end is not held whole)
                data = f.readline(MAX_JSONL_LINE + 1)
            except OSError as e:
                raise InputError(f"{path}:{n}: {e.strerror or e}") from None
            if not data:
                break
            if meter is not None:       # (a window of diagnose holds this many bytes' worth)
                meter.read += len(data)
            if len(data) > MAX_JSONL_LINE:
                raise InputError(f"{path}:{n}: line longer than {MAX_JSONL_LINE} bytes")
            try:
                line = data.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{n}: not UTF-8 (byte {e.start + 1} of the line)") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not JSON ({e.msg})") from None
            except RecursionError:
                raise InputError(f"{path}:{n}: not JSON this reader takes (nested too deeply)") from None
            except ValueError:          # (the only other: an integer too long to convert)
                raise InputError(f"{path}:{n}: not JSON this reader takes (a number of more than "
                                 f"{sys.get_int_max_str_digits()} digits)") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: not a JSON object")
            certs: dict[str, bytes] = {}
            if isinstance(obj.get("summary"), dict):
                raw = obj.get("certs") or {}
                if isinstance(raw, dict):
                    try:
                        certs = {str(k): base64.b64decode(str(v)) for k, v in raw.items()}
                    except ValueError:
                        raise InputError(f"{path}:{n}: certs must be base64 DER") from None
                obj = obj["summary"]
            if counts is not None and _without_bytes(obj, certs):
                counts["without_certificate_bytes"] += 1
            yield obj, certs


def _is_summary_file(path: str) -> bool:
    return path.endswith((".jsonl", ".json", ".ndjson"))


def iter_inputs(paths: Sequence[str], errors: list[str],
                counts: Counter[str] | None = None,
                jobs: int = 1, meter: Meter | None = None) -> Iterator[tuple[dict[str, object], dict[str, bytes]]]:
    """Every connection of every file, streamed; a file that cannot be (fully) read adds a one-line message
    to ``errors`` and the others still go through.  ``counts["without_certificate_bytes"]``: JSONL summaries
    whose certificates came without their DER.  ``meter``: the bytes of JSONL lines read are added there
    (a capture's summaries are the sensor's, whose lists are cut: bounded by their count)."""
    for p in paths:
        if _is_summary_file(p):
            try:
                yield from _read_jsonl(p, counts, meter)
            except InputError as e:
                errors.append(str(e))
            continue
        try:
            yield from summarize_paths([p], jobs=jobs)
        except CaptureError as exc:
            msg = str(exc)
            errors.append(msg if p in msg else f"{p}: {msg}")
        except OSError as exc:
            errors.append(f"{p}: {exc.strerror or exc}")


def _bad_note(n: int) -> str:
    return (f"{n} JSON object{'' if n == 1 else 's'} skipped: not a connection summary (no client and server "
            f"text; see docs/summary-schema.md)")


def _bytes_note(n: int) -> str:
    return (f"{n} JSONL summar{'y' if n == 1 else 'ies'} carry certificate facts without the certificates' bytes: "
            f"their chains are judged without the truststore (dates, names, chain order; not signatures or trust). "
            f"`tlsdiag summarize --certs` writes the bytes, or diagnose the capture itself")


def _notes(engine: Engine, counts: Counter[str] | None = None) -> list[str]:
    cfg = engine.config
    notes = []
    if counts and counts["without_certificate_bytes"] and cfg.truststores:
        notes.append(_bytes_note(counts["without_certificate_bytes"]))
    if engine.stats.bad_input:
        notes.append(_bad_note(engine.stats.bad_input))
    if cfg.role is None and not cfg.local_nets:
        notes.append("direction unknown (no --role / --local-net): fixes are given for both directions")
    if not cfg.truststores:
        notes.append("no --truststore: certificate trust is not judged (dates, names, chain order and self-signed are)")
    if len(engine.profiles):
        notes.append(f"server profiles: {len(engine.profiles)} (server, SNI) pairs learned from successful handshakes")
    return notes


class _Report:
    """What the report makes of diagnoses (the JSON lines, the groups of the text report): the failures
    counted, the warnings dropped without ``warnings``.  The command's own one writes the JSON lines to
    ``out`` at once; a ``--jobs`` worker's (no ``out``) holds them with their positions, and the
    command's takes them in (:meth:`absorb`)."""

    def __init__(self, jsonl: bool, warnings: bool, out: IO[str] | None = None) -> None:
        self.jsonl = jsonl
        self.warnings = warnings
        self.out = out
        self.failures = 0
        self.lines: list[tuple[int, str]] = []      # (position, JSON line), in order
        self.grouper = Grouper()

    def absorb(self, folds: list[_Report]) -> None:
        """Take in the workers' reports of one window: their lines written in input order, their
        groups merged."""
        for f in folds:
            self.failures += f.failures
            self.grouper.merge(f.grouper)
        if self.jsonl and self.out is not None:
            self.out.writelines(line for _k, line in heapq.merge(*[f.lines for f in folds], key=_first))

    def add(self, position: int, d: dict[str, object]) -> None:
        if d.get("severity") == "failure":
            self.failures += 1
        elif not self.warnings:
            return
        if self.jsonl:
            line = json_bytes(d).decode() + "\n"
            if self.out is not None:
                self.out.write(line)
            else:
                self.lines.append((position, line))
        else:
            self.grouper.add(d)


def _first(x):
    return x[0]


def run(argv: Sequence[str], stdout: IO[str], stderr: IO[str]) -> int:
    started = common.start("diagnose", build_parser(), list(argv), stderr)
    if isinstance(started, int):
        return started
    a, values = started
    try:
        cfg = build_config(settings.diagnose_values(values))
    except ConfigError as e:
        stderr.write(f"tlsdiag diagnose: {e}\n")
        return ERROR
    engine = Engine(cfg)
    if a.profiles_load:
        try:
            n = engine.profiles.load(a.profiles_load)
            log.info("loaded %d profiles from %s", n, a.profiles_load)
        except ProfileError as exc:
            stderr.write(f"tlsdiag diagnose: {exc}\n")
            return ERROR
    errors: list[str] = []
    missing = [p for p in a.files if p != "-" and not os.path.exists(p)]     # ("-": stdin)
    errors.extend(f"{p}: no such file" for p in missing)
    if len(missing) == len(a.files):
        for msg in errors:
            stderr.write(f"tlsdiag diagnose: {msg}\n")
        return ERROR
    # the summaries of a window are held at once (analyzer.engine.DEFAULT_WINDOW): the collector
    # rescanned them as they came, 2.0-2.7 s of the 4.5-5 s that 100k of them took to come (and
    # found no cycle); tuned as summarize is, 3.0-3.2 s
    tune_gc_for_batch()
    tune_malloc_for_batch()
    counts: Counter[str] = Counter()
    meter = Meter()                 # (a window is bounded by its bytes of JSONL as by its count)
    inputs = iter_inputs([p for p in a.files if p not in missing], errors, counts, a.jobs, meter)
    jsonl = a.format == "jsonl"
    report = _Report(jsonl, values["warnings"], stdout)
    try:
        if a.jobs <= 1:     # (one process: every diagnosis straight into the command's report)
            for _folds in fold_windows(engine, inputs, 1, lambda: report, meter=meter):
                pass
        else:
            for folds in fold_windows(engine, inputs, a.jobs, functools.partial(_Report, jsonl, values["warnings"]),
                                      meter=meter):
                report.absorb(folds)
    except WorkerFailed:
        raise                   # a bug, as in one process: tlsdiag.cli says so (exit status 3)
    except JobsError as exc:
        stderr.write(f"tlsdiag diagnose: error: {exc}\n")
        return ERROR
    if a.format == "text":
        colour = a.color == "always" or (a.color == "auto" and want_colour(stdout))
        stdout.write(render(report.grouper, engine.stats.as_dict(), colour=colour, notes=_notes(engine, counts)))
    else:
        if counts["without_certificate_bytes"] and engine.config.truststores:
            stderr.write(f"tlsdiag diagnose: note: {_bytes_note(counts['without_certificate_bytes'])}\n")
        if engine.stats.bad_input:
            stderr.write(f"tlsdiag diagnose: note: {_bad_note(engine.stats.bad_input)}\n")
    if a.profiles_save:
        try:
            engine.profiles.save(a.profiles_save)
        except OSError as exc:
            errors.append(f"cannot save profiles to {a.profiles_save}: {exc.strerror or exc}")
    for msg in errors:
        stderr.write(f"tlsdiag diagnose: {msg}\n")
    if errors:
        return ERROR
    return FAILURES if report.failures else SUCCESS


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return ERROR_CTRL_C
    except BrokenPipeError:
        try:
            sys.stdout.close()
        except OSError:
            pass
        return SUCCESS

