"""The Kafka analyzer service (``tlsdiag analyzer``): a consumer group on ``tls.handshakes``
running the diagnosis engine, exactly-once by default.  What it does and guarantees --
outputs and keys, transactions, poison messages, certificates, profile and incident state
across restarts -- is in docs/services.md ("Analyzer").

Modules: ``consumer`` (the loop: poll -> process_batch -> commit), ``state`` (per-partition
profiles and incident state on the profiles topic), ``certstore``, ``producer`` (deferred,
partitioned sends), ``webhook``, ``batchgc``, ``config``.  The command
(``tlsdiag/commands/analyzer.py``) builds the config and injects the Kafka partitioner, topic
creation and compression.
"""
from __future__ import annotations

from .batchgc import BatchGC
from .certstore import CertStore
from .config import AnalyzerConfig
from .consumer import Analyzer
from .producer import DeferredSends
from .state import PartitionState
from .webhook import Webhook

__all__ = ["Analyzer", "AnalyzerConfig", "BatchGC", "CertStore", "DeferredSends",
           "PartitionState", "Webhook"]
