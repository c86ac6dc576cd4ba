"""What every command's ``main`` shares: its argument parser (usage errors are one line and
exit 2, never argparse's usage dump and exit 2 with a traceback-looking text), its settings
(:mod:`tlsdiag.settings`), the one logging set-up (:mod:`tlsdiag.logs`) and the start-up line
saying which wire implementation runs and with which settings."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import IO

from cext import wire
from tlsdiag import __version__, logs, settings
from tlsdiag.settings import ConfigError, Values
from tlsdiag.status import ExitStatus

__all__ = ["Parser", "UsageError", "start", "build_info"]


def build_info() -> tuple:
    """The ``tlsdiag_build_info`` metric: version and wire implementation as labels."""
    return ("tlsdiag_build_info", "gauge", "tlsdiag version and wire implementation (c or py)",
            {(("version", __version__), ("wire", wire.IMPLEMENTATION)): 1})


class UsageError(Exception):
    """A bad flag or setting: one line for stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser(command: str, description: str, with_settings: bool = True,
           verbose: bool = True) -> Parser:
    p = Parser(prog="tlsdiag " + command, description=description)
    if verbose:
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="more log output on stderr (-v info, -vv debug, -vvv the Kafka "
                            "client's too)")
    if with_settings:
        settings.add_arguments(p, command)
    return p


def seconds(text: str) -> float:
    """An argparse type: a time span of more than 0 seconds, at most a year (not -1, nan, inf)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not 0 < x <= 366 * 86400:
        raise argparse.ArgumentTypeError("must be more than 0 seconds and at most a year, not %r"
                                         % text)
    return x


def start(command: str, p: argparse.ArgumentParser, argv: Sequence[str] | None,
          stderr: IO[str] | None = None, log_base: int = logging.WARNING,
          check_required: bool = True) -> tuple[argparse.Namespace, Values | None] | int:
    """Parse ``argv``, set up logging, load the command's settings.  Returns ``(args,
    values)`` or an exit status (``--help``: 0; a usage or settings error: 2, one line)."""
    err = sys.stderr if stderr is None else stderr
    try:
        a = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        err.write("tlsdiag %s: %s\n" % (command, e))
        return ExitStatus.ERROR
    except SystemExit as e:                      # --help, --version
        return ExitStatus.SUCCESS if not e.code else ExitStatus.ERROR
    logs.setup(getattr(a, "verbose", 0) or 0, base=log_base)
    log = logging.getLogger("tlsdiag." + command)
    log.info("tlsdiag %s %s, wire implementation %s", command, __version__, wire.IMPLEMENTATION)
    if wire.FALLBACK_REASON:
        log.warning("the compiled wire core is not used (%s): the pure-Python twin runs, same "
                    "results, slower", wire.FALLBACK_REASON)
    values = None
    if command in settings.COMMANDS:
        try:
            values = settings.load(command, a, check_required=check_required)
        except ConfigError as e:
            err.write("tlsdiag %s: %s\n" % (command, e))
            return ExitStatus.ERROR
        log.info("settings: %s", values.describe())
    return a, values


def exit_after(grace_s: float, command: str, consequence: str) -> None:
    """After a stop signal: if the process is still running ``grace_s`` seconds later (a
    blocking call to a broker that went away), log why and end it -- a service stops within
    seconds in every state.  Only for loops where nothing acknowledged is lost by that (the
    analyzer: an uncommitted batch is consumed again)."""
    def expire() -> None:
        logging.getLogger("tlsdiag." + command).warning(
            "stopping now: still busy %g s after the stop signal (Kafka does not answer); %s",
            grace_s, consequence)
        logging.shutdown()
        os._exit(ExitStatus.SUCCESS)
    t = threading.Timer(grace_s, expire)
    t.daemon = True
    t.start()


def fail(command: str, message: object, stderr: IO[str] | None = None) -> int:
    """One line on stderr, exit status 2."""
    (sys.stderr if stderr is None else stderr).write("tlsdiag %s: %s\n" % (command, message))
    return ExitStatus.ERROR
