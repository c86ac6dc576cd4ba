"""tlsdiag analyzer: diagnosis engine (pure) and, separately, the Kafka analyzer service.

The engine takes handshake summaries (docs/summary-schema.md) and certificate DERs and returns diagnoses;
the same code runs in ``tlsdiag diagnose`` and in the Kafka service.
"""

from __future__ import annotations

from .config import ConfigError, DiagnoseConfig, build_config
from .causes import CAUSES, FAILURE_CAUSES, Cause
from .engine import Engine, failures
from .rules import FAILURE_RULES, Rule

__all__ = ["CAUSES", "Cause", "ConfigError", "DiagnoseConfig", "Engine", "FAILURE_CAUSES", "FAILURE_RULES", "Rule",
           "build_config", "failures"]
