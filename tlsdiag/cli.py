"""``tlsdiag`` console script: one entry point, subcommands imported lazily (httpie style)."""
from __future__ import annotations

import errno
import importlib
import io
import os
import sys
import traceback

from tlsdiag import __version__
from tlsdiag.status import ExitStatus

__all__ = ["main"]

#: subcommand -> (module, help); each module has ``main(argv) -> int``
COMMANDS = {
    "summarize": ("tlsdiag.commands.summarize", "one handshake summary per TLS connection in captures"),
    "diagnose": ("tlsdiag.commands.diagnose", "name the cause of every failed handshake in captures"),
    "probe": ("tlsdiag.commands.probe", "actively check a TLS server you name"),
    "sensor": ("tlsdiag.commands.sensor", "live capture, summaries to Kafka"),
    "analyzer": ("tlsdiag.commands.analyzer", "Kafka consumer: diagnoses and incidents"),
    "watch": ("tlsdiag.commands.watch", "live capture and diagnosis in one process, no Kafka"),
    "tail": ("tlsdiag.commands.tail", "live terminal view of open incidents"),
}


def _usage() -> str:
    lines = ["usage: tlsdiag COMMAND [ARGS...]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append("  %-10s %s" % (name, text))
    lines += ["", "tlsdiag COMMAND --help for a command's options"]
    return "\n".join(lines)


#: the services: their output goes to Kafka, and nothing needs their standard output
_SERVICES = ("sensor", "analyzer")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    closed = _fill_closed_fds()
    if 1 in closed and not (argv and argv[0] in _SERVICES):
        print("tlsdiag%s: error: cannot write the output: standard output is closed" % (
            " " + argv[0] if argv and argv[0] in COMMANDS else ""), file=sys.stderr)
        return ExitStatus.ERROR
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return ExitStatus.SUCCESS if argv else ExitStatus.ERROR
    if argv[0] == "--version":
        from cext import wire
        print("tlsdiag %s (wire: %s)" % (__version__, wire.IMPLEMENTATION))
        return ExitStatus.SUCCESS
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print("tlsdiag: unknown command %r\n\n%s" % (argv[0], _usage()), file=sys.stderr)
        return ExitStatus.ERROR
    try:
        module = importlib.import_module(cmd[0])
    except ImportError as exc:
        print("tlsdiag: %s is not available in this build: %s" % (argv[0], exc), file=sys.stderr)
        return ExitStatus.ERROR
    _whole_writes_to_stdout()
    try:
        return int(module.main(argv[1:]))
    except KeyboardInterrupt:
        return ExitStatus.ERROR_CTRL_C
    except BrokenPipeError:              # `tlsdiag ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return ExitStatus.SUCCESS
    except OSError as exc:
        if exc.errno not in _FULL:
            return _internal(argv[0])
        # `tlsdiag summarize big.pcap > out` on a full disk: one line, not a traceback
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        print("tlsdiag %s: error: cannot write the output: %s" % (argv[0], exc.strerror),
              file=sys.stderr)
        return ExitStatus.ERROR
    except Exception:       # noqa: BLE001 -- a bug: said as one, not as Python's exit status 1
        return _internal(argv[0])


def _fill_closed_fds() -> set:
    """Standard descriptors the process was started without (``>&-``), now on /dev/null: a file
    opened later does not take their number (output meant for fd 1 would go into a capture), and
    ``sys.stdout`` / ``sys.stderr`` are files, not None.  Returns the ones that were closed."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        try:
            got = os.open(os.devnull, os.O_RDWR)
        except OSError:
            return closed
        if got != fd:               # (lowest free number: it is fd unless a lower one was free)
            os.dup2(got, fd)
            os.close(got)
        if fd == 1:
            sys.stdout = open(1, "w", closefd=False)
        elif fd == 2:
            sys.stderr = open(2, "w", closefd=False)
    return closed


def _internal(command: str) -> int:
    """A bug reached the top: its traceback (for a report), a last line that says so, and an exit
    status of its own -- Python's own 1 is diagnose's "failures found"."""
    traceback.print_exc()
    print("tlsdiag %s: internal error (a bug in tlsdiag: please report the traceback above); "
          "exit status %d" % (command, ExitStatus.INTERNAL), file=sys.stderr)
    return ExitStatus.INTERNAL


#: the errors of an output that cannot take more
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _WholeWrites(io.FileIO):
    """The commands' standard output file: a write takes all of the data or raises.  (When a
    file takes part of a write -- a full disk, a file size limit -- ``BufferedWriter``
    returns the short count and drops the error, which ``TextIOWrapper`` and ``print``
    ignore: the output would end short without a word.)"""

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        total = len(view)
        while view:
            n = super().write(view)
            if n is None:       # a non-blocking output, full: wait for its reader, as a blocking one would
                from sensor.pipeline import wait_writable     # (only then: a heavy import)
                wait_writable(self.fileno())
                continue
            view = view[n:]
        return total


def _whole_writes_to_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):   # not a file (a test's capture)
        return
    out = sys.stdout
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_WholeWrites(fd, "w", closefd=False)),
                                  encoding=out.encoding, errors=out.errors,
                                  line_buffering=out.line_buffering)
