#!/usr/bin/env python3
"""The CPU of each step of ``tlsdiag diagnose`` on one capture, in one process: summaries
(as the dicts the analyzer reads), learning the server profiles, diagnosing, JSON.

    python3 bench/diagnose_steps.py /tmp/tlsbench/hs-100k.pcap
"""
from __future__ import annotations

import gc
import json
import sys
import time


def main() -> int:
    from analyzer.engine import Engine
    from sensor.pipeline import summarize_paths
    t0 = time.process_time()
    pairs = list(summarize_paths([sys.argv[1]]))
    t1 = time.process_time()
    engine = Engine()
    gc.freeze()                         # (as diagnose_windows does)
    for s, c in pairs:
        engine.observe(s, c)
    t2 = time.process_time()
    out: list = []
    for s, c in pairs:
        out.extend(engine.diagnose(s, c))
    t3 = time.process_time()
    for d in out:
        json.dumps(d)
    t4 = time.process_time()
    print("summaries %.2f s, profiles %.2f s, diagnoses %.2f s, JSON %.2f s (%d connections, "
          "%d diagnoses)" % (t1 - t0, t2 - t1, t3 - t2, t4 - t3, len(pairs), len(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
