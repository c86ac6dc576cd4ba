from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitStatus(IntEnum):
    SUCCESS = 0
    FAILURES = 1          # diagnose: failed handshakes were diagnosed
    ERROR = 2             # usage or input error
    INTERNAL = 3          # a bug: the traceback is printed for a report (not 1, which says "failures found")
    ERROR_CTRL_C = 130
