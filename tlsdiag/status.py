from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitStatus(IntEnum):
    SUCCESS = 0
    FAILURES = 1          # diagnose: failed handshakes were diagnosed
    ERROR = 2             # usage or input error
    ERROR_CTRL_C = 130
