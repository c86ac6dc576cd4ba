"""Diagnosis throughput: N summaries (default 10k; TLSDIAG_PERF_N=100000 for the full figure).

The mix replicates realistic summaries: 80% successful handshakes over 50 servers with real chains,
20% failures of every kind. Prints the time per summary; asserts a generous bound so CI catches
a pathological slowdown (e.g. a cache that stopped working), not machine noise.
"""

from __future__ import annotations

import os
import time

from analyzer.config import DiagnoseConfig, TrustStore
from analyzer.engine import Engine
from tests.support.pki import issue, make_pki
from tests.support.summaries import alert, ders, make_summary


def corpus(n: int):
    p = make_pki()
    leaves = [issue(f"svc{i}.example.com", p.inter, sans=[f"svc{i}.example.com"]) for i in range(50)]
    templates = []
    for i, leaf in enumerate(leaves):
        srv = f"10.2.{i}.9:443"
        templates.append((make_summary(server=srv, sni=f"svc{i}.example.com", chain=[leaf, p.inter]), ders([leaf, p.inter])))
    fails = [
        (make_summary(established=False, version=None, cipher=None, history="Cl", sni=None, server="10.2.1.9:443",
                      alerts=[alert("server", "handshake_failure", "client_hello")]), {}),
        (make_summary(established=False, version=None, cipher=None, history="Cl", server="10.2.2.9:443",
                      sni="svc2.example.com", alerts=[alert("server", "protocol_version", "client_hello")]), {}),
        (make_summary(established=False, history="CsxknL", chain=[p.expired, p.inter], sni="old.example.com",
                      server="10.2.3.9:443", alerts=[alert("client", "certificate_expired", "server_hello_done")]),
         ders([p.expired, p.inter])),
        (make_summary(established=False, history="CsxknL", chain=[p.leaf], server="10.2.4.9:443",
                      alerts=[alert("client", "unknown_ca", "server_hello_done")]), ders([p.leaf])),
        (make_summary(established=False, version="TLSv1.3", history="CsiI", outcome="encrypted_alert",
                      server="10.2.5.9:443", encrypted_alerts=[{"from": "client", "length": 19}]), {}),
    ]
    out = []
    for k in range(n):
        s, c = fails[(k // 5) % len(fails)] if k % 5 == 0 else templates[k % len(templates)]
        s = dict(s)
        s["id"] = f"{k:016x}"
        s["client"] = f"10.1.{(k >> 8) & 255}.{k & 255}:{1024 + k % 60000}"
        s["start"] = float(s["start"]) + k * 0.001
        out.append((s, c))
    return out, p


def test_diagnosis_throughput():
    n = int(os.environ.get("TLSDIAG_PERF_N", "10000"))
    items, p = corpus(n)
    e = Engine(DiagnoseConfig(truststores={"default": TrustStore("roots", (p.root.cert,))}))
    t0 = time.perf_counter()
    diags = e.diagnose_pairs(items)
    dt = time.perf_counter() - t0
    per = dt / n * 1e6
    print(f"\ndiagnosed {n} summaries in {dt:.2f} s: {per:.1f} us/summary, {n / dt:,.0f} summaries/s, "
          f"{len(diags)} diagnoses")
    assert e.stats.failed == n // 5 + (1 if n % 5 else 0)
    assert e.stats.failures_by_cause["expired_certificate"] > 0
    assert per < 2000, f"{per:.0f} us per summary"
