#!/usr/bin/env python3
"""TLS 1.3 scenarios for issue 12: failures after the client's flight, PSK at certificate rotation,
TLS 1.2/1.3 to the same server, a long mixed-traffic capture and a multi-server capture.

Run as root, always with your own namespace prefix:

    python3 tests/scenarios/generate_tls13.py --ns-prefix sc12 --out tests/data/scenarios-tls13

Builds on ``generate.py`` (its command builders, namespaces, tshark decode), with what these
scenarios need on top:

* several servers per capture, captured on the Router's ``r-c`` and the MP's ``m-b`` and merged;
* servers restarted in the middle of a capture (new certificate, new ticket keys);
* long-lived clients (``pytls.py client --script``, ``TlsClient --script``) that keep TLS sessions
  across those restarts, so they offer ``pre_shared_key`` to the new server;
* every client connection bound to a source port chosen here, so each expected line is matched to its
  connection by address and port, also when connections run in parallel lanes;
* a user-space relay (``wanrelay.py``) between the client and the Router for loss and reordering
  (``sch_netem`` is missing on these kernels);
* after capture, every connection is reassembled (``wire13.py``) and checked against what the scenario
  says happened: client outcome, HTTP status, PSK offered and accepted, HelloRetryRequest, version,
  the client's error message.  A mismatch fails the run.

Topology (namespaces PREFIX-client, -wan, -router, -mp, -backend)::

    client 10.10.1.2 -- [wan: relay] -- 10.10.1.1 router 10.10.2.1 -- 10.10.2.2 mp 10.10.3.1 -- 10.10.3.2 backend
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate as G  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))     # the repository, for tests.support
from tests.support import pki as pki_mod  # noqa: E402
import wire13  # noqa: E402

log = logging.getLogger("scenarios13")

ROLES = ("client", "wan", "router", "mp", "backend")
LINKS = (
    ("client", "c-r", "10.10.1.2/24", "wan", "w-c", ""),
    ("wan", "w-r", "", "router", "r-c", "10.10.1.1/24"),
    ("router", "r-m", "10.10.2.1/24", "mp", "m-r", "10.10.2.2/24"),
    ("mp", "m-b", "10.10.3.1/24", "backend", "b-m", "10.10.3.2/24"),
)
API, BE, MYORG, SHOP = "api.example.test", "backend.example.test", "myorg.example.test", "shop.example.test"
OSSL, OSSL_SRV, CURL, PY, PY_SRV, JAVA = G.OSSL, G.OSSL_SRV, G.CURL, G.PY, G.PY_SRV, G.JAVA

#: issue 12's classes (the ``issue_class`` field)
C_CERT_AFTER_FLIGHT, C_PSK, C_MEMORY, C_MIXED, C_MULTI = ("client_cert_after_flight", "psk_rotation",
                                                           "tls12_memory", "mixed_traffic", "multi_server")


# --------------------------------------------------------------------------- model

@dataclass
class Server:
    key: str
    direction: str
    port: int
    name: str                        # the DNS name its clients ask for

    @property
    def ip(self) -> str:
        return G.ROUTER if self.direction == "northbound" else G.BACKEND

    @property
    def client_ip(self) -> str:
        return G.CLIENT if self.direction == "northbound" else G.MP

    @property
    def ns(self) -> str:
        return G.ns("router") if self.direction == "northbound" else G.ns("backend")

    @property
    def client_ns(self) -> str:
        return G.ns("client") if self.direction == "northbound" else G.ns("mp")

    @property
    def endpoint(self) -> str:
        return "%s:%d" % (self.ip, self.port)


@dataclass
class Expect:
    """One client connection: what the scenario makes happen (one expected.jsonl line)."""
    server: Server
    stack: str
    ok: bool                          # the client gets an HTTP response (or finishes its health check)
    cause: str | None = None          # expected_cause: the best diagnosis this capture allows
    rejected_by: str | None = None
    true_cause: str | None = None     # what really happened (defaults to cause)
    source: str | None = None         # where a diagnosis can take the cause from (cause_source)
    kind: str = "full"
    notes: str = ""
    hard: str = ""
    server_name: str | None = None
    warning: str | None = None
    resumed: bool | None = None       # checked against the wire when not None
    psk: bool | None = None
    hrr: bool | None = None
    version: str | None = None
    status: int | None = None
    error: str | None = None          # regex the client's error output must match
    issue_class: str = ""
    memory: bool = False              # true_cause can come from the server's chain seen earlier in clear
    sport: int = 0
    server_stack: str = ""            # the server's stack when the connection ran (servers restart)
    server_leaf: str = ""             # the PKI stem of the certificate the server had then
    result: dict = field(default_factory=dict)


class Ports:
    """Client source ports, unique over a whole run (no TIME_WAIT clash, one port = one connection)."""

    def __init__(self, first: int = 20000) -> None:
        self.next = first
        self.ctx_seq = 0
        self.lock = threading.Lock()

    def take(self) -> int:
        with self.lock:
            self.next += 1
            if self.next > 32000:
                raise RuntimeError("out of client ports")
            return self.next

    def ctx(self) -> str:
        """A new JSSE SSLContext name (a full handshake, no session to resume)."""
        with self.lock:
            self.ctx_seq += 1
            return "fresh%d" % self.ctx_seq


class Env13(G.Env):
    def __init__(self, pki_dir: str, tmp: str) -> None:
        super().__init__(pki_dir, tmp)
        self.www = os.path.join(tmp, "www")        # s_server -WWW/-HTTP document root
        self.sessions = os.path.join(tmp, "sessions")

    def ks(self, stem: str | None) -> str | None:
        return self.keystore(stem) if stem else None


class Scenario:
    """A capture: servers, and steps run in order (``lanes`` run step lists in parallel)."""

    def __init__(self, name: str, description: str, env: Env13, ports: Ports, issue_class: str) -> None:
        self.name = name
        self.description = description
        self.env = env
        self.ports = ports
        self.issue_class = issue_class
        self.servers: dict[str, Server] = {}
        self.steps: list[tuple] = []
        self.expects: list[Expect] = []

    # ---- servers
    def server(self, key: str, direction: str, port: int, name: str,
               argv: Callable[[str, int], list[str]], stack: str, leaf: str = "server-good") -> Server:
        assert key not in self.servers
        srv = Server(key, direction, port, name)
        self.servers[key] = srv
        self.steps.append(("start", key, argv(srv.ip, port), stack, leaf))
        return srv

    def restart(self, key: str, argv: Callable[[str, int], list[str]], stack: str, leaf: str) -> None:
        srv = self.servers[key]
        self.steps.append(("stop", key))
        self.steps.append(("start", key, argv(srv.ip, srv.port), stack, leaf))

    def sleep(self, seconds: float) -> None:
        self.steps.append(("sleep", seconds))

    def impair(self, **settings: object) -> None:
        self.steps.append(("impair", dict(settings)))

    def fork(self) -> "Scenario":
        """A parallel lane: shares servers and expectations, has its own steps."""
        lane = Scenario(self.name, "", self.env, self.ports, self.issue_class)
        lane.servers, lane.expects = self.servers, self.expects
        return lane

    def lanes(self, lanes: list["Scenario"]) -> None:
        self.steps.append(("lanes", [ln.steps for ln in lanes]))

    # ---- clients
    def _expect(self, srv: Server, stack: str, ok: bool, kw: dict) -> Expect:
        kw.setdefault("server_name", srv.name)
        kw.setdefault("issue_class", self.issue_class)
        if "cause" in kw and kw.get("rejected_by") is None and kw["cause"] is not None:
            raise ValueError("a failure needs rejected_by")
        e = Expect(srv, stack, ok, sport=self.ports.take(), **kw)
        self.expects.append(e)
        return e

    def ossl(self, key: str, flags: list[str], ok: bool, stack: str = OSSL, cert: str | None = None,
             verify: bool = True, sess_out: str | None = None, sess_in: str | None = None, path: str = "/",
             sni: str | None = "", cafile: str = "root.pem", **kw: object) -> Expect:
        srv = self.servers[key]
        sni = srv.name if sni == "" else sni
        kw.setdefault("server_name", sni)
        e = self._expect(srv, stack, ok, kw)
        argv = G.s_client(self.env, srv.ip, srv.port, sni, flags, verify=verify, cert=cert, cafile=cafile)
        argv += ["-bind", "%s:%d" % (srv.client_ip, e.sport)]
        if sess_out:
            argv += ["-sess_out", os.path.join(self.env.sessions, sess_out)]
        if sess_in:
            argv += ["-sess_in", os.path.join(self.env.sessions, sess_in)]
        self.steps.append(("run", argv, e, b"GET %s HTTP/1.0\r\n\r\n" % path.encode()))
        return e

    def curl(self, key: str, flags: list[str], ok: bool, stack: str = CURL, verify: bool = True, path: str = "/",
             **kw: object) -> Expect:
        srv = self.servers[key]
        e = self._expect(srv, stack, ok, kw)
        argv = G.curl(self.env, srv.ip, srv.port, srv.name, flags, verify=verify)
        argv[argv.index("https://%s:%d/" % (srv.name, srv.port))] = "https://%s:%d%s" % (srv.name, srv.port, path)
        argv += ["--local-port", str(e.sport)]
        self.steps.append(("run", argv, e, b""))
        return e

    def py(self, key: str, ok: bool, stack: str = PY, cert: str | None = None, save: str | None = None,
           resume: str | None = None, mode: str = "http", path: str = "/", min_version: str | None = None,
           max_version: str | None = None, sni: str | None = "", no_verify: bool = False, **kw: object) -> Expect:
        """A connection from the long-lived Python client of the server's client namespace."""
        srv = self.servers[key]
        sni = srv.name if sni == "" else sni
        kw.setdefault("server_name", sni)
        e = self._expect(srv, stack, ok, kw)
        words = {"host": srv.ip, "port": srv.port, "source_port": e.sport, "mode": mode, "path": path}
        words.update({"servername": sni} if sni else {"no_sni": 1})
        if cert:
            words.update(cert=self.env.p(cert + "-chain.pem"), key=self.env.p(cert + ".key"))
        if min_version:
            words["min_version"] = min_version
        if max_version:
            words["max_version"] = max_version
        if no_verify:
            words["no_verify"] = 1
        if save:
            words["save"] = save
        if resume:
            words["resume"] = resume
        self.steps.append(("drive", ("py", srv.client_ns), words, e))
        return e

    def java(self, key: str, ok: bool, stack: str = JAVA, protocols: str | None = None, keystore: str | None = None,
             ctx: str | None = None, mode: str = "http", path: str = "/", sni: str | None = "",
             truststore: str | None = None, no_verify: bool = False, jvm: str = "", **kw: object) -> Expect:
        """A connection from the long-lived JSSE client of the server's client namespace.  ``ctx``
        names the SSLContext (its session cache): the same name again resumes, None means a new one."""
        srv = self.servers[key]
        sni = srv.name if sni == "" else sni
        kw.setdefault("server_name", sni)
        e = self._expect(srv, stack, ok, kw)
        if ctx is None:
            ctx = self.ports.ctx()
        words = {"host": srv.ip, "port": srv.port, "source_port": e.sport, "mode": mode, "path": path,
                 "ctx": ctx, "truststore": truststore or self.env.truststore}
        if sni:
            words["servername"] = sni
        if protocols:
            words["protocols"] = protocols
        if keystore:
            words["keystore"] = self.env.keystore(keystore)
        if no_verify:
            words["noverify"] = 1
        self.steps.append(("drive", ("java" + jvm, srv.client_ns), words, e))
        return e


# --------------------------------------------------------------------------- servers

def s_server(env: Env13, leaf: str = "server-good", chain: str | None = "intermediate",
             extra: list[str] | None = None, www: str = "-www") -> Callable[[str, int], list[str]]:
    def argv(ip: str, port: int) -> list[str]:
        a = G.s_server(env, port, ip, leaf=leaf, chain=chain, extra=extra)
        if www != "-www":
            a[a.index("-www")] = www
        return a
    return argv


def py_server(env: Env13, leaf: str = "server-good", extra: list[str] | None = None
              ) -> Callable[[str, int], list[str]]:
    return lambda ip, port: G.py_server(env, port, ip, leaf=leaf, extra=["--threaded"] + (extra or []))


MTLS = ["-Verify", "1", "-verify_return_error"]


# --------------------------------------------------------------------------- the scenarios

def scenarios(env: Env13, ports: Ports) -> list[Scenario]:
    out: list[Scenario] = []
    out += client_cert_scenarios(env, ports)
    out += psk_scenarios(env, ports)
    out += memory_scenarios(env, ports)
    out.append(multi_server_scenario(env, ports))
    out.append(mixed_long_scenario(env, ports))
    return out


def client_cert_scenarios(env: Env13, ports: Ports) -> list[Scenario]:
    """Class 1: TLS 1.3 servers that reject the client's certificate after the client's whole flight."""
    root = env.p("root.pem")
    mtls13 = ["-tls1_3", "-CAfile", root] + MTLS
    out = []
    base = {"missing": 8501, "expired": 8503, "unknown": 8505}
    for what, port0 in base.items():
        for direction, dport in (("northbound", 0), ("southbound", 10)):
            d = "north" if direction == "northbound" else "south"
            sc = Scenario("cc13_%s_%s" % (what, d), "", env, ports, C_CERT_AFTER_FLIGHT)
            name = API if direction == "northbound" else BE
            sc.server("ossl", direction, port0 + dport, name, s_server(env, extra=mtls13),
                      OSSL_SRV + " -tls1_3 -Verify 1")
            sc.server("py", direction, port0 + dport + 1, name,
                      py_server(env, extra=["--client-ca", root, "--min-version", "TLSv1.3"]),
                      PY_SRV + " TLSv1.3, CERT_REQUIRED")
            cert = {"missing": None, "expired": "client-expired", "unknown": "client-unknown"}[what]
            for key in ("ossl", "py"):
                # controls: the same server accepts a good client certificate (both client stacks)
                sc.ossl(key, ["-tls1_3"], True, OSSL + " with client cert", cert="client-good", kind="mtls")
                sc.java(key, True, JAVA + " with keystore", protocols="TLSv1.3", keystore="client-good",
                        kind="mtls")
                for stack in ("java", "ossl", "py"):
                    sc_add_cert_failure(sc, key, stack, what, cert)
            sc.description = ("TLS 1.3 client certificate %s: JSSE, OpenSSL and Python clients against "
                              "s_server -Verify 1 and a Python CERT_REQUIRED server (%s)" % (what, direction))
            out.append(sc)
    return out


def sc_add_cert_failure(sc: Scenario, key: str, stack: str, what: str, cert: str | None) -> None:
    ca_names = key == "ossl"     # s_server sends certificate_authorities; the Python server does not
    label = {"missing": "without client cert", "expired": "with expired client cert",
             "unknown": "with client cert from an unknown CA"}[what]
    true = {"missing": "client_certificate_missing", "expired": "expired_certificate",
            "unknown": "unknown_certificate"}[what]
    kw: dict = {"rejected_by": "server", "true_cause": true, "kind": "mtls", "version": "TLSv1.3",
                "resumed": False}
    sent = cert is not None
    if stack == "java" and what == "unknown" and ca_names:
        sent = False
        kw["notes"] = ("JSSE's key manager withholds a certificate whose issuer is not in the "
                       "CertificateRequest's certificate_authorities: it sends an EMPTY Certificate")
    if sent:
        kw.update(cause="encrypted_failure", source="none",
                  hard="the client's Certificate, the server's alert and its reason are all encrypted; the "
                       "client's flight is complete (Certificate, CertificateVerify, Finished), the server "
                       "answers with one alert-sized encrypted record and no NewSessionTicket or data")
    else:
        kw.update(cause="client_certificate_missing", source="size",
                  hard="encrypted empty Certificate (record size: 25 bytes from OpenSSL, 41 from JSSE), then "
                       "Finished; the server's certificate_required alert is encrypted")
    if stack == "java":
        sc.java(key, False, JAVA + " " + label, protocols="TLSv1.3", keystore=cert, **kw)
    elif stack == "ossl":
        sc.ossl(key, ["-tls1_3"], False, OSSL + " " + label, cert=cert, **kw)
    else:
        sc.py(key, False, PY + " " + label, cert=cert, min_version="TLSv1.3", **kw)


def psk_scenarios(env: Env13, ports: Ports) -> list[Scenario]:
    """Class 2: clients keep TLS 1.3 tickets while the server is restarted with an expired certificate
    (new ticket keys): PSK offered, declined, full handshake, the client aborts.  Then the rotation is
    fixed (a new valid certificate): PSK offered, declined, full handshake, success."""
    out = []
    for direction, port in (("northbound", 8521), ("southbound", 8522)):
        d = "north" if direction == "northbound" else "south"
        sc = Scenario("psk_rotation_%s" % d, "", env, ports, C_PSK)
        name = API if direction == "northbound" else BE
        if direction == "northbound":
            mk = lambda leaf: s_server(env, leaf=leaf, extra=["-tls1_3"])  # noqa: E731
            stack = OSSL_SRV + " -tls1_3"
        else:
            mk = lambda leaf: py_server(env, leaf=leaf, extra=["--min-version", "TLSv1.3"])  # noqa: E731
            stack = PY_SRV + " TLSv1.3"
        sc.server("api", direction, port, name, mk("server-good"), stack + " (good certificate)")
        t13 = ["-tls1_3"]
        full = {"kind": "full", "resumed": False, "psk": False, "version": "TLSv1.3"}
        res = {"kind": "resumption", "resumed": True, "psk": True, "version": "TLSv1.3"}
        # before the rotation: full handshakes that leave tickets, and accepted PSKs (controls)
        sc.ossl("api", t13, True, sess_out="a-%s" % d, **full)
        sc.ossl("api", t13, True, OSSL + " -sess_in (ticket accepted)", sess_in="a-%s" % d, sess_out="b-%s" % d,
                **res)
        sc.py("api", True, save="p", min_version="TLSv1.3", **full)
        sc.py("api", True, PY + " session reuse (ticket accepted)", resume="p", save="p", min_version="TLSv1.3",
              **res)
        sc.py("api", True, save="q", min_version="TLSv1.3", **full)
        sc.java("api", True, protocols="TLSv1.3", ctx="j", **full)
        sc.java("api", True, JAVA + " same SSLContext (ticket accepted)", protocols="TLSv1.3", ctx="j", **res)
        sc.java("api", True, protocols="TLSv1.3", ctx="k", **full)
        # rotation to an expired certificate: every client still holds a ticket of the old server
        sc.restart("api", mk("server-expired"), stack + " restarted: EXPIRED certificate, new ticket keys",
                   "server-expired")
        declined = {"kind": "psk_declined", "psk": True, "resumed": False, "version": "TLSv1.3",
                    "rejected_by": "client", "true_cause": "expired_certificate"}
        hard = ("the client offers pre_shared_key (a ticket of the server before its restart); the ServerHello "
                "has no pre_shared_key: declined, full handshake with the new certificate, which is encrypted")
        sc.ossl("api", t13, False, OSSL + " -sess_in (ticket of the old server)", sess_in="b-%s" % d,
                cause="expired_certificate", source="cleartext alert", hard=hard + "; OpenSSL's alert is cleartext",
                error="certificate has expired", **declined)
        sc.py("api", False, PY + " session reuse (ticket of the old server)", resume="p", min_version="TLSv1.3",
              cause="expired_certificate", source="cleartext alert", hard=hard + "; OpenSSL's alert is cleartext",
              error="certificate has expired", **declined)
        sc.java("api", False, JAVA + " same SSLContext (ticket of the old server)", protocols="TLSv1.3", ctx="j",
                cause="encrypted_failure", source="none", hard=hard + "; JSSE's alert is encrypted too",
                error="(?i)expired|validity", **declined)
        sc.ossl("api", t13, False, OSSL + " no ticket", cause="expired_certificate", rejected_by="client",
                source="cleartext alert", kind="full", psk=False, version="TLSv1.3", error="certificate has expired",
                notes="comparison: the same failure without a PSK offer")
        # the rotation is fixed: a new valid certificate, new ticket keys again
        sc.restart("api", mk("server-good-new"), stack + " restarted again: new valid certificate",
                   "server-good-new")
        ok_declined = {"kind": "psk_declined", "psk": True, "resumed": False, "version": "TLSv1.3",
                       "notes": "PSK offered and declined, full handshake, SUCCESS: a declined PSK alone is no failure"}
        sc.ossl("api", t13, True, OSSL + " -sess_in (ticket of the first server)", sess_in="a-%s" % d,
                sess_out="c-%s" % d, **ok_declined)
        sc.py("api", True, PY + " session reuse (ticket of the first server)", resume="q", save="q",
              min_version="TLSv1.3", **ok_declined)
        sc.java("api", True, JAVA + " SSLContext with a ticket of the first server", protocols="TLSv1.3", ctx="k",
                **ok_declined)
        sc.ossl("api", t13, True, OSSL + " -sess_in (new ticket accepted)", sess_in="c-%s" % d, **res)
        sc.py("api", True, PY + " session reuse (new ticket accepted)", resume="q", min_version="TLSv1.3", **res)
        sc.java("api", True, JAVA + " same SSLContext (new ticket accepted)", protocols="TLSv1.3", ctx="k", **res)
        sc.description = ("TLS 1.3 tickets across a certificate rotation (%s): accepted PSKs, then PSKs declined "
                          "by a server restarted with an expired certificate, then declined PSKs that succeed "
                          "after the fix" % direction)
        out.append(sc)
    return out


def memory_scenarios(env: Env13, ports: Ports) -> list[Scenario]:
    """Class 3: one server, TLS 1.2 handshakes whose cleartext chain shows the exact problem and TLS 1.3
    failures (certificate encrypted) to the same ip:port + SNI within minutes."""
    out = []
    specs = [
        ("memory_incomplete_chain_north", "northbound", 8531, API, {"chain": None}, "server-good",
         "incomplete_chain", "leaf without its intermediate", "tls12_first"),
        ("memory_hostname_north", "northbound", 8532, MYORG, {"leaf": "server-wrongname"}, "server-wrongname",
         "hostname_mismatch", "certificate for something.example.test", "tls12_first"),
        ("memory_expired_south", "southbound", 8533, BE, {"leaf": "server-expired"}, "server-expired",
         "expired_certificate", "expired leaf", "tls13_first"),
    ]
    for name, direction, port, host, srv_kw, leaf, cause, what, order in specs:
        sc = Scenario(name, "", env, ports, C_MEMORY)
        sc.server("srv", direction, port, host, s_server(env, **srv_kw), OSSL_SRV + " TLS 1.2 and 1.3 (%s)" % what,
                  leaf=leaf)
        tls12, tls13 = ((memory_tls12_north, memory_tls13_north) if direction == "northbound"
                        else (memory_tls12_south, memory_tls13_south))
        if order == "tls12_first":
            tls12(sc, "srv", cause)
            sc.sleep(20)
            tls13(sc, "srv", cause)
            sc.description = "%s: TLS 1.2 failures (chain in clear), then TLS 1.3 failures 20 s later" % what
        else:
            tls13(sc, "srv", cause)
            sc.sleep(65)
            tls12(sc, "srv", cause)
            sc.sleep(5)
            tls13(sc, "srv", cause)
            sc.description = ("%s: TLS 1.3 failures first (nothing in clear yet), TLS 1.2 failures 65 s later, "
                              "then TLS 1.3 failures again" % what)
        out.append(sc)
    return out


#: what OpenSSL-family clients (s_client, curl, Python) put on the wire when they reject a TLS 1.3
#: certificate: a CLEARTEXT alert (unknown_ca, certificate_expired, bad_certificate)
OSSL13_WIRE = {"incomplete_chain": "unknown_certificate", "expired_certificate": "expired_certificate",
               "hostname_mismatch": "certificate_rejected"}


def mem(cause: str, wire_cause: str, rejected_by: str = "client", **kw: object) -> dict:
    """A TLS 1.3 certificate failure: ``wire_cause`` from this connection alone, ``cause`` when the same
    server showed the same certificate in clear earlier in the capture (decided after capture, rows_for)."""
    d = {"cause": wire_cause, "true_cause": cause, "rejected_by": rejected_by, "memory": True,
         "source": "none" if wire_cause == "encrypted_failure" else "cleartext alert"}
    d.update(kw)
    return d


def memory_tls12_north(sc: Scenario, key: str, cause: str) -> None:
    kw = {"cause": cause, "rejected_by": "client", "source": "cleartext chain", "version": "TLSv1.2"}
    sc.ossl(key, ["-tls1_2"], False, **kw)
    sc.curl(key, ["--tlsv1.2", "--tls-max", "1.2"], False, **kw)
    sc.java(key, False, protocols="TLSv1.2", **kw)
    sc.py(key, False, max_version="TLSv1.2", **kw)


def memory_tls13_north(sc: Scenario, key: str, cause: str) -> None:
    v = {"version": "TLSv1.3"}
    sc.ossl(key, ["-tls1_3"], False, **mem(cause, OSSL13_WIRE[cause], **v))
    sc.java(key, False, protocols="TLSv1.3", **mem(cause, "encrypted_failure", **v))
    sc.py(key, False, min_version="TLSv1.3", **mem(cause, OSSL13_WIRE[cause], **v))
    if cause == "hostname_mismatch":
        sc.curl(key, ["--tlsv1.3"], False, **mem(cause, "certificate_rejected", **v, notes=(
            "curl checks the name only after the TLS 1.3 handshake: full handshake, tickets received, then "
            "close_notify and RST without a request")))
    else:
        sc.curl(key, ["--tlsv1.3"], False, **mem(cause, OSSL13_WIRE[cause], **v))
    sc.java(key, False, protocols="TLSv1.3", **mem(cause, "encrypted_failure", **v))


def memory_tls12_south(sc: Scenario, key: str, cause: str) -> None:
    kw = {"cause": cause, "rejected_by": "client", "source": "cleartext chain", "version": "TLSv1.2"}
    sc.java(key, False, protocols="TLSv1.2", **kw)
    sc.java(key, False, protocols="TLSv1.2", **kw)


def memory_tls13_south(sc: Scenario, key: str, cause: str) -> None:
    for _ in range(3):
        sc.java(key, False, protocols="TLSv1.3", **mem(cause, "encrypted_failure", version="TLSv1.3"))


def multi_server_scenario(env: Env13, ports: Ports) -> Scenario:
    """Class 5: eight servers, both directions, several causes, connections interleaved round-robin
    (for the report's grouping by server)."""
    sc = Scenario("multi_server_report", "", env, ports, C_MULTI)
    root = env.p("root.pem")
    sc.server("expired", "northbound", 8701, API, s_server(env, leaf="server-expired", extra=["-tls1_2"]),
              OSSL_SRV + " -tls1_2 (expired leaf)", leaf="server-expired")
    sc.server("legacy", "northbound", 8702, API, s_server(env, extra=["-tls1_2"]), OSSL_SRV + " -tls1_2")
    sc.server("mtls12", "northbound", 8703, API, s_server(env, extra=["-tls1_2", "-CAfile", root] + MTLS),
              OSSL_SRV + " -tls1_2 -Verify 1")
    sc.server("good", "northbound", 8706, SHOP, py_server(env, leaf="server-shop"), PY_SRV, leaf="server-shop")
    sc.server("wrongname", "southbound", 8704, MYORG, s_server(env, leaf="server-wrongname", extra=["-tls1_2"]),
              OSSL_SRV + " -tls1_2 (something.example.test served)", leaf="server-wrongname")
    sc.server("chain", "southbound", 8705, BE, s_server(env, chain=None, extra=["-tls1_2"]),
              OSSL_SRV + " -tls1_2 (leaf without intermediate)")
    sc.server("mtls13", "southbound", 8707, BE, s_server(env, extra=["-tls1_3", "-CAfile", root] + MTLS),
              OSSL_SRV + " -tls1_3 -Verify 1")
    sc.server("sni", "southbound", 8708, BE, py_server(env, extra=["--require-sni"]),
              PY_SRV + " (refuses ClientHello without SNI)")
    f = {"rejected_by": "client"}
    conns: dict[str, list[Callable[[], Expect]]] = {
        "expired": [lambda: sc.curl("expired", ["--tlsv1.2"], False, cause="expired_certificate", **f),
                    lambda: sc.ossl("expired", ["-tls1_2"], False, cause="expired_certificate", **f)],
        "legacy": [lambda: sc.ossl("legacy", ["-tls1_3"], False, OSSL + " -tls1_3", cause="protocol_mismatch",
                                   rejected_by="server"),
                   lambda: sc.ossl("legacy", ["-tls1_2"], True)],
        "mtls12": [lambda: sc.ossl("mtls12", ["-tls1_2"], False, OSSL + " without client cert",
                                   cause="client_certificate_missing", rejected_by="server"),
                   lambda: sc.ossl("mtls12", ["-tls1_2"], True, OSSL + " with client cert", cert="client-good")],
        "good": [lambda: sc.py("good", True), lambda: sc.curl("good", [], True)],
        "wrongname": [lambda: sc.java("wrongname", False, protocols="TLSv1.2", cause="hostname_mismatch", **f)],
        "chain": [lambda: sc.java("chain", False, protocols="TLSv1.2", cause="incomplete_chain", **f)],
        "mtls13": [lambda: sc.java("mtls13", False, JAVA + " without keystore", protocols="TLSv1.3",
                                   cause="client_certificate_missing", rejected_by="server", source="size",
                                   hard="TLS 1.3: the empty Certificate is a 41-byte encrypted record"),
                   lambda: sc.java("mtls13", True, JAVA + " with keystore", protocols="TLSv1.3",
                                   keystore="client-good")],
        "sni": [lambda: sc.java("sni", False, JAVA + " -Djsse.enableSNIExtension=false", protocols="TLSv1.2",
                                cause="sni_required", rejected_by="server", sni=None,
                                jvm=",-Djsse.enableSNIExtension=false"),
                lambda: sc.java("sni", True, protocols="TLSv1.2")],
    }
    rng = random.Random(5)
    for rnd in range(3):
        keys = list(conns)
        rng.shuffle(keys)
        for key in keys:
            for make in conns[key]:
                make()
    sc.description = ("eight servers (4 northbound, 4 southbound), seven causes and successes, connections "
                      "interleaved round-robin over three rounds")
    return sc


class Sessions:
    """Which server generation a client's kept session (ticket) belongs to; None = unknown."""

    def __init__(self) -> None:
        self.gen: dict[str, int | None] = {}

    def expect(self, name: str, current: int) -> dict:
        """Expectations (psk/resumed) for a connection offering session ``name``."""
        if name not in self.gen:
            return {"psk": False, "resumed": False}
        if self.gen[name] is None:
            return {}
        return {"resumed": self.gen[name] == current}


def mixed_long_scenario(env: Env13, ports: Ports) -> Scenario:
    """Class 4: several hundred connections over a few minutes to nine servers, most of them successes
    (full handshakes, TLS 1.3 ticket and TLS 1.2 session resumption, HelloRetryRequest, health checks,
    503 answers), loss and reordering on two servers, a certificate rotation in the middle (expired,
    then fixed) and some tens of labelled failures."""
    sc = Scenario("mixed_long", "", env, ports, C_MIXED)
    root = env.p("root.pem")
    api_argv = lambda leaf: s_server(env, leaf=leaf, www="-HTTP")  # noqa: E731
    sc.server("api", "northbound", 8601, API, api_argv("server-good"), OSSL_SRV + " -HTTP (good certificate)")
    sc.server("shop", "northbound", 8602, SHOP, py_server(env, leaf="server-shop"), PY_SRV, leaf="server-shop")
    sc.server("hrr", "northbound", 8603, API, s_server(env, extra=["-tls1_3", "-groups", "P-384"], www="-HTTP"),
              OSSL_SRV + " -tls1_3 -groups P-384 -HTTP")
    sc.server("legacy", "northbound", 8604, API, s_server(env, extra=["-tls1_2"], www="-HTTP"),
              OSSL_SRV + " -tls1_2 -HTTP")
    sc.server("mtls", "northbound", 8605, API, s_server(env, extra=["-tls1_3", "-CAfile", root] + MTLS, www="-HTTP"),
              OSSL_SRV + " -tls1_3 -Verify 1 -HTTP")
    sc.server("chain", "northbound", 8606, API, s_server(env, chain=None, www="-HTTP"),
              OSSL_SRV + " -HTTP (leaf without intermediate)")
    sc.server("be", "southbound", 8611, BE, py_server(env), PY_SRV)
    sc.server("be-exp", "southbound", 8612, BE, s_server(env, leaf="server-expired", www="-HTTP"),
              OSSL_SRV + " -HTTP (expired leaf)", leaf="server-expired")
    sc.server("be-sni", "southbound", 8613, BE, py_server(env, extra=["--require-sni"]),
              PY_SRV + " (refuses ClientHello without SNI)")
    gen = {"api": 0}
    api_state = {"leaf": "server-good"}
    py_sess, ossl_sess, jn_sess, js_sess = Sessions(), Sessions(), Sessions(), Sessions()
    rng = random.Random(12)

    def api_ok() -> bool:
        return api_state["leaf"] != "server-expired"

    def api_fail(stack_kind: str, version: str) -> dict:
        """The expectation of a connection to api while it serves the expired certificate."""
        if version == "TLSv1.2":
            return {"cause": "expired_certificate", "rejected_by": "client", "source": "cleartext chain"}
        if stack_kind == "java":
            return mem("expired_certificate", "encrypted_failure")
        return {"cause": "expired_certificate", "rejected_by": "client", "source": "cleartext alert",
                "hard": "TLS 1.3: certificate encrypted; the OpenSSL-family client's alert is cleartext"}

    def gap(lane: Scenario, lo: float = 0.15, hi: float = 0.7) -> None:
        lane.sleep(round(rng.uniform(lo, hi), 2))

    # ---- lane 1: the Python client in the client namespace (most of the traffic)
    def py_lane(lane: Scenario, n: int) -> None:
        for _ in range(n):
            r = rng.random()
            if r < 0.30:                               # api, TLS 1.3, tickets
                name = rng.choice(["p13a", "p13b", "p13c"])
                resume = name if name in py_sess.gen and rng.random() < 0.7 else None
                exp = py_sess.expect(name, gen["api"]) if resume else {"psk": False, "resumed": False}
                ok = api_ok()
                kw = dict(exp, kind="full", version="TLSv1.3", path="/ok", psk=bool(resume))
                if not ok:
                    kw.update(api_fail("py", "TLSv1.3"))
                    kw["resumed"] = False
                lane.py("api", ok, min_version="TLSv1.3", resume=resume, save=name if ok else None,
                            status=200 if ok else None, **kw)
                if ok:
                    py_sess.gen[name] = gen["api"]
            elif r < 0.40:                             # api, TLS 1.2, session tickets
                name = "p12"
                resume = name if name in py_sess.gen and rng.random() < 0.7 else None
                exp = py_sess.expect(name, gen["api"]) if resume else {"resumed": False}
                exp.pop("psk", None)
                ok = api_ok()
                kw = dict(exp, kind="full", version="TLSv1.2", path="/ok", psk=False)
                if not ok:
                    kw.update(api_fail("py", "TLSv1.2"))
                    kw["resumed"] = False
                lane.py("api", ok, PY + " TLSv1.2", max_version="TLSv1.2", resume=resume,
                        save=name if ok else None, status=200 if ok else None, **kw)
                if ok:
                    py_sess.gen[name] = gen["api"]
            elif r < 0.60:                             # shop (Python server): 200 or 503, tickets
                busy = rng.random() < 0.3
                resume = "shop" if "shop" in py_sess.gen and rng.random() < 0.6 else None
                lane.py("shop", True, resume=resume, save="shop", path="/busy" if busy else "/",
                        status=503 if busy else 200, kind="http_503" if busy else "full", resumed=bool(resume),
                        psk=bool(resume))
                py_sess.gen["shop"] = 0
            elif r < 0.70:                             # HelloRetryRequest (server only has P-384)
                resume = "hrr" if "hrr" in py_sess.gen and rng.random() < 0.5 else None
                lane.py("hrr", True, resume=resume, save="hrr", path="/ok", status=200, hrr=True,
                        resumed=bool(resume), kind="hrr",
                        notes="the client's key_share (x25519) is not the server's group: HelloRetryRequest")
                py_sess.gen["hrr"] = 0
            elif r < 0.83:                             # health checks
                key = rng.choice(["api", "shop"])
                mode = rng.choice(["tcp", "tcp", "tcp_rst", "handshake"])
                if mode == "handshake" and key == "api" and not api_ok():
                    lane.py(key, False, PY + " TLS health check", mode=mode, kind="health_handshake",
                            **api_fail("py", "TLSv1.3"))
                else:
                    lane.py(key, True, PY + {"tcp": " TCP health check (connect, close)",
                                             "tcp_rst": " TCP health check (connect, RST)",
                                             "handshake": " TLS health check (handshake, close_notify)"}[mode],
                            mode=mode, kind="health_" + mode,
                            notes="a load balancer's health check: not a failure")
            elif r < 0.86:                             # missing intermediate, TLS 1.2 and 1.3
                v = rng.choice(["TLSv1.2", "TLSv1.3"])
                if v == "TLSv1.2":
                    lane.py("chain", False, PY + " TLSv1.2", max_version="TLSv1.2", cause="incomplete_chain",
                            rejected_by="client", source="cleartext chain", version=v)
                else:
                    lane.py("chain", False, PY + " TLSv1.3", min_version="TLSv1.3", version=v,
                            **mem("incomplete_chain", "unknown_certificate"))
            else:                                      # more api TLS 1.3 without a ticket
                ok = api_ok()
                kw = {} if ok else api_fail("py", "TLSv1.3")
                lane.py("api", ok, min_version="TLSv1.3", path="/ok", status=200 if ok else None, psk=False,
                        version="TLSv1.3", **kw)
            gap(lane, 0.05, 0.45)

    # ---- lane 2: one-shot OpenSSL and curl clients in the client namespace
    def oneshot_lane(lane: Scenario, n: int) -> None:
        for _ in range(n):
            r = rng.random()
            ok = api_ok()
            if r < 0.25:                               # s_client TLS 1.2 session resumption (-sess_out/-sess_in)
                f = "o12"
                resume = f in ossl_sess.gen and rng.random() < 0.75
                exp = ossl_sess.expect(f, gen["api"]) if resume else {"resumed": False}
                exp.pop("psk", None)
                kw = dict(exp, version="TLSv1.2", psk=False, kind="full")
                if not ok:
                    kw.update(api_fail("ossl", "TLSv1.2"))
                    kw["resumed"] = False
                lane.ossl("api", ["-tls1_2"], ok, OSSL + " -tls1_2" + (" -sess_in" if resume else ""), path="/ok",
                          sess_in=f if resume else None, sess_out=f if ok else None, status=200 if ok else None,
                          **kw)
                if ok:
                    ossl_sess.gen[f] = gen["api"]
            elif r < 0.45:                             # s_client TLS 1.3 tickets
                f = "o13"
                resume = f in ossl_sess.gen and rng.random() < 0.75
                exp = ossl_sess.expect(f, gen["api"]) if resume else {"psk": False, "resumed": False}
                kw = dict(exp, version="TLSv1.3", kind="full", psk=resume)
                if not ok:
                    kw.update(api_fail("ossl", "TLSv1.3"))
                    kw["resumed"] = False
                lane.ossl("api", ["-tls1_3"], ok, OSSL + " -tls1_3" + (" -sess_in" if resume else ""), path="/ok",
                          sess_in=f if resume else None, sess_out=f if ok else None, status=200 if ok else None,
                          **kw)
                if ok:
                    ossl_sess.gen[f] = gen["api"]
            elif r < 0.65:                             # curl to shop: 200 / 503
                busy = rng.random() < 0.35
                lane.curl("shop", [], True, path="/busy" if busy else "/", status=503 if busy else 200,
                          kind="http_503" if busy else "full")
            elif r < 0.73:                             # HRR with a client whose first key share is P-521
                lane.ossl("hrr", ["-tls1_3", "-groups", "P-521:P-384"], True, OSSL + " -groups P-521:P-384",
                          path="/ok", status=200, hrr=True, kind="hrr",
                          notes="the client's only key_share is P-521, the server has only P-384: HelloRetryRequest")
            elif r < 0.75:                             # no common group at all
                lane.ossl("hrr", ["-tls1_3", "-groups", "X25519:P-256"], False, OSSL + " -groups X25519:P-256",
                          cause="cipher_mismatch", rejected_by="server", source="cleartext alert",
                          notes="no common key-exchange group (same shape and fix as a suite mismatch)")
            elif r < 0.84:                             # TLS 1.2-only server: 1.2 works, 1.3-only fails
                if rng.random() < 0.75:
                    lane.ossl("legacy", ["-tls1_2"], True, OSSL + " -tls1_2", path="/ok", status=200)
                else:
                    lane.ossl("legacy", ["-tls1_3"], False, OSSL + " -tls1_3", cause="protocol_mismatch",
                              rejected_by="server", source="cleartext alert")
            elif r < 0.94:                             # TLS 1.3 mTLS
                if rng.random() < 0.7:
                    lane.ossl("mtls", ["-tls1_3"], True, OSSL + " with client cert", cert="client-good", path="/ok",
                              status=200, kind="mtls")
                else:
                    lane.ossl("mtls", ["-tls1_3"], False, OSSL + " without client cert", kind="mtls",
                              cause="client_certificate_missing", rejected_by="server", source="size",
                              hard="TLS 1.3: empty Certificate (25-byte encrypted record), encrypted alert")
            else:                                      # missing intermediate
                if rng.random() < 0.5:
                    lane.curl("chain", ["--tlsv1.2", "--tls-max", "1.2"], False, CURL + " TLSv1.2",
                              cause="incomplete_chain", rejected_by="client", source="cleartext chain",
                              version="TLSv1.2")
                else:
                    lane.curl("chain", ["--tlsv1.3"], False, CURL + " TLSv1.3", version="TLSv1.3",
                              **mem("incomplete_chain", "unknown_certificate"))
            gap(lane, 0.2, 0.8)

    # ---- lane 3: JSSE in the client namespace
    def java_north_lane(lane: Scenario, n: int) -> None:
        for _ in range(n):
            r = rng.random()
            ok = api_ok()
            if r < 0.55:                               # api TLS 1.3 / 1.2 through one SSLContext each
                v = "TLSv1.3" if rng.random() < 0.7 else "TLSv1.2"
                ctx = "jn" + v[-1]
                exp = jn_sess.expect(ctx, gen["api"])
                kw = dict(exp, version=v)
                if v == "TLSv1.3" and jn_sess.gen.get(ctx, -1) is not None:
                    kw["psk"] = ctx in jn_sess.gen
                else:
                    kw.pop("psk", None)
                if not ok:
                    kw.update(api_fail("java", v))
                    kw["resumed"] = False
                lane.java("api", ok, JAVA + " " + v, protocols=v, ctx=ctx, path="/ok", status=200 if ok else None,
                          kind="full", **kw)
                jn_sess.gen[ctx] = gen["api"] if ok else None
            elif r < 0.75:                             # shop
                busy = rng.random() < 0.3
                lane.java("shop", True, protocols="TLSv1.3", ctx="jshop", path="/busy" if busy else "/",
                          status=503 if busy else 200, kind="http_503" if busy else "full")
            elif r < 0.85:                             # HRR from JSSE
                lane.java("hrr", True, protocols="TLSv1.3", path="/ok", status=200, hrr=True, kind="hrr")
            else:                                      # mTLS 1.3 from JSSE
                if rng.random() < 0.7:
                    lane.java("mtls", True, JAVA + " with keystore", protocols="TLSv1.3", keystore="client-good",
                              path="/ok", status=200, kind="mtls")
                else:
                    lane.java("mtls", False, JAVA + " without keystore", protocols="TLSv1.3", kind="mtls",
                              cause="client_certificate_missing", rejected_by="server", source="size",
                              hard="TLS 1.3: empty Certificate in a 41-byte encrypted record (JSSE), encrypted alert")
            gap(lane, 0.3, 1.2)

    # ---- lane 4: JSSE in the MP namespace (southbound)
    def java_south_lane(lane: Scenario, n: int) -> None:
        for _ in range(n):
            r = rng.random()
            if r < 0.64:                               # be: TLS 1.3 / 1.2, resumption, 503
                v = "TLSv1.3" if rng.random() < 0.65 else "TLSv1.2"
                ctx = "js" + v[-1]
                busy = rng.random() < 0.2
                exp = js_sess.expect(ctx, 0)
                if v == "TLSv1.2":
                    exp.pop("psk", None)
                lane.java("be", True, JAVA + " " + v, protocols=v, ctx=ctx, path="/busy" if busy else "/",
                          status=503 if busy else 200, version=v, kind="http_503" if busy else "full", **exp)
                js_sess.gen[ctx] = 0
            elif r < 0.78:                             # health checks
                mode = rng.choice(["tcp", "handshake"])
                lane.java("be", True, JAVA + (" TCP health check" if mode == "tcp" else " TLS health check"),
                          protocols="TLSv1.3", mode=mode, kind="health_" + mode,
                          notes="a health check: not a failure")
            elif r < 0.88:                             # expired backend: TLS 1.3 mostly, sometimes 1.2
                if rng.random() < 0.7:
                    lane.java("be-exp", False, JAVA + " TLSv1.3", protocols="TLSv1.3", version="TLSv1.3",
                              **mem("expired_certificate", "encrypted_failure"))
                else:
                    lane.java("be-exp", False, JAVA + " TLSv1.2", protocols="TLSv1.2", version="TLSv1.2",
                              cause="expired_certificate", rejected_by="client", source="cleartext chain")
            else:                                      # SNI-only backend
                if rng.random() < 0.4:
                    lane.java("be-sni", False, JAVA + " -Djsse.enableSNIExtension=false", protocols="TLSv1.3",
                              sni=None, jvm=",-Djsse.enableSNIExtension=false", cause="sni_required",
                              rejected_by="server", source="cleartext alert")
                else:
                    lane.java("be-sni", True, protocols="TLSv1.3", status=200)
            gap(lane, 0.2, 0.9)

    def phase(n_py: int, n_one: int, n_jn: int, n_js: int, impair: dict | None = None) -> None:
        lanes = [sc.fork() for _ in range(4)]
        if impair is not None:
            lanes[0].impair(**impair)
        py_lane(lanes[0], n_py)
        oneshot_lane(lanes[1], n_one)
        java_north_lane(lanes[2], n_jn)
        java_south_lane(lanes[3], n_js)
        sc.lanes(lanes)

    lossy = {"loss": 0.02, "reorder": 0.04, "reorder_delay_ms": 25, "ports": [8601, 8602]}
    phase(110, 40, 30, 60)                       # A: normal
    phase(60, 25, 20, 40, impair=lossy)          # A': loss and reordering on api and shop
    sc.impair()
    # the rotation goes wrong: api restarted with an expired certificate (and new ticket keys)
    sc.restart("api", api_argv("server-expired"), OSSL_SRV + " -HTTP restarted: EXPIRED certificate",
               "server-expired")
    gen["api"] += 1
    api_state["leaf"] = "server-expired"
    phase(24, 10, 8, 20)                         # R: every api connection fails
    # fixed: a new valid certificate (new ticket keys again)
    sc.restart("api", api_argv("server-good-new"), OSSL_SRV + " -HTTP restarted: new valid certificate",
               "server-good-new")
    gen["api"] += 1
    api_state["leaf"] = "server-good-new"
    phase(60, 25, 20, 40, impair=lossy)          # C: old tickets declined, success
    sc.impair()
    phase(90, 35, 25, 50)                        # C': normal
    sc.description = ("nine servers, %d connections over a few minutes: full handshakes, ticket and session "
                      "resumption, HelloRetryRequest, health checks, 503s, loss and reordering on two servers, an "
                      "expired-certificate rotation in the middle (then fixed), and labelled failures"
                      % len(sc.expects))
    return sc


# --------------------------------------------------------------------------- running

class Driver:
    """A long-lived client (``--script``): one stdin line per connection, one RESULT line back."""

    def __init__(self, argv: list[str], log_path: str, cwd: str) -> None:
        self.argv = argv
        self.err = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     cwd=cwd, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.lock = threading.Lock()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def connect(self, words: dict, timeout: float = 40.0) -> tuple[dict, str]:
        with self.lock:
            line = " ".join("%s=%s" % kv for kv in words.items())
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            chatter = []
            deadline = time.monotonic() + timeout
            while True:
                try:
                    got = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise RuntimeError("driver %s: no RESULT for %r" % (self.argv[:3], line)) from None
                if got is None:
                    raise RuntimeError("driver %s exited (rc %s)" % (self.argv[:3], self.proc.poll()))
                if got.startswith("RESULT "):
                    return json.loads(got[7:]), "\n".join(chatter)
                chatter.append(got)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.err.close()


class Runner:
    def __init__(self, sc: Scenario, env: Env13, logdir: str, relay: "Relay") -> None:
        self.sc = sc
        self.env = env
        self.logdir = logdir
        self.relay = relay
        self.servers: dict[str, subprocess.Popen] = {}
        self.server_stack: dict[str, str] = {}
        self.server_leaf: dict[str, str] = {}
        self.drivers: dict[tuple[str, str], Driver] = {}
        self.dlock = threading.Lock()
        self.clog = open(os.path.join(logdir, sc.name + ".clients.log"), "w", encoding="utf-8")
        self.clock = threading.Lock()

    def driver(self, key: tuple[str, str]) -> Driver:
        with self.dlock:
            if key not in self.drivers:
                kind, ns = key
                if kind == "py":
                    argv = [sys.executable, self.env.pytls, "client", "--script", "--host", "0.0.0.0", "--port", "1",
                            "--cafile", self.env.p("root.pem")]
                else:
                    jvm = kind[len("java"):].split(",") if kind != "java" else []
                    argv = ["java"] + [j for j in jvm if j] + ["-cp", self.env.java_cp, "TlsClient", "--script"]
                self.drivers[key] = Driver(G.nsx(ns, argv), os.path.join(self.logdir, "%s.%s.%s.driver.log" % (
                    self.sc.name, kind.replace("/", "_")[:20], ns)), self.env.tmp)
            return self.drivers[key]

    def execute(self, steps: list[tuple]) -> None:
        for step in steps:
            op = step[0]
            if op == "start":
                _, key, argv, stack, leaf = step
                srv = self.sc.servers[key]
                logf = open(os.path.join(self.logdir, "%s.%s.server.log" % (self.sc.name, key)), "ab")
                logf.write(("$ %s\n" % " ".join(argv)).encode())
                logf.flush()
                self.servers[key] = subprocess.Popen(G.nsx(srv.ns, argv), stdin=subprocess.PIPE, stdout=logf,
                                                     stderr=subprocess.STDOUT, cwd=self.env.www)
                G.wait_listen(srv.ns, srv.port)
                self.server_stack[key] = stack
                self.server_leaf[key] = leaf
            elif op == "stop":
                G.stop(self.servers.pop(step[1]))
                time.sleep(0.2)
            elif op == "sleep":
                time.sleep(step[1])
            elif op == "impair":
                self.relay.set(**step[1])
            elif op == "lanes":
                errors: list[BaseException] = []
                threads = []
                for lane in step[1]:
                    t = threading.Thread(target=self._lane, args=(lane, errors))
                    t.start()
                    threads.append(t)
                for t in threads:
                    t.join()
                if errors:
                    raise errors[0]
            elif op == "run":
                _, argv, e, stdin = step
                self._run(argv, e, stdin)
            elif op == "drive":
                _, key, words, e = step
                self._drive(key, words, e)
            else:
                raise ValueError(op)

    def _lane(self, steps: list[tuple], errors: list[BaseException]) -> None:
        try:
            self.execute(steps)
        except BaseException as exc:     # noqa: BLE001 -- re-raised by the caller
            errors.append(exc)

    def _log(self, text: str) -> None:
        with self.clock:
            self.clog.write(text)
            self.clog.flush()

    def _run(self, argv: list[str], e: Expect, stdin: bytes) -> None:
        e.server_stack, e.server_leaf = self.server_stack[e.server.key], self.server_leaf[e.server.key]
        t0 = time.time()
        try:
            cp = subprocess.run(G.nsx(e.server.client_ns, argv), input=stdin, capture_output=True, timeout=30,
                                cwd=self.env.tmp)
            rc, out, err = cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as exc:
            rc, out, err = -999, (exc.stdout or b"").decode(errors="replace"), "timeout"
        tool = os.path.basename(argv[0])
        status = None
        if tool == "openssl":
            m = re.search(r"HTTP/1\.[01] (\d{3})", out)
            status = int(m.group(1)) if m and rc == 0 else None
            resumed = "Reused, " in out
        elif tool == "curl":
            m = re.search(r"HTTP (\d{3})", out)
            status = int(m.group(1)) if m and rc == 0 and m.group(1) != "000" else None
            resumed = None
        else:
            resumed = None
        ok = status is not None
        e.result = {"ok": ok, "status": status, "rc": rc, "client_resumed": resumed, "t": t0,
                    "error": None if ok else _short_error(out, err)}
        self._log("$ %s\nrc=%d\n--stdout--\n%s\n--stderr--\n%s\n\n" % (" ".join(argv), rc, out[-3000:], err[-3000:]))

    def _drive(self, key: tuple[str, str], words: dict, e: Expect) -> None:
        e.server_stack, e.server_leaf = self.server_stack[e.server.key], self.server_leaf[e.server.key]
        res, chatter = self.driver(key).connect(words)
        e.result = dict(res)
        self._log("> %s %s\n%s\nRESULT %s\n\n" % (key[0], " ".join("%s=%s" % kv for kv in words.items()), chatter,
                                                  json.dumps(res)))

    def close(self) -> None:
        for d in self.drivers.values():
            d.close()
        for p in self.servers.values():
            G.stop(p)
        self.clog.close()


def _short_error(out: str, err: str) -> str:
    lines = [ln.strip() for ln in (err + "\n" + out).splitlines() if ln.strip()]
    keys = ("error", "alert", "fail", "Exception", "verify", "SSL", "exception")
    hits = [ln for ln in lines if any(k in ln for k in keys)]
    return " | ".join((hits or lines)[-3:])[:400]


class Relay:
    """The wanrelay.py process between the client and the Router namespaces."""

    def __init__(self, tmp: str) -> None:
        self.control = os.path.join(tmp, "wanrelay.json")
        self.logpath = os.path.join(tmp, "wanrelay.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.control, "w", encoding="utf-8") as f:
            json.dump({}, f)
        wan = G.ns("wan")
        for ifn in ("w-c", "w-r"):
            G.sh(G.nsx(wan, ["ip", "link", "set", ifn, "promisc", "on"]))
        G.sh(G.nsx(wan, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]), check=False)
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(G.nsx(wan, [sys.executable, os.path.join(HERE, "wanrelay.py"), "w-c", "w-r",
                                                 "--control", self.control]),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        G.wait_file_contains(self.logpath, b"relaying")

    def set(self, **settings: object) -> None:
        with open(self.control, "w", encoding="utf-8") as f:
            json.dump(settings, f)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            G.stop(self.proc)
            self.log.close()


def run_scenario(sc: Scenario, env: Env13, outdir: str, logdir: str, relay: Relay) -> tuple[list[dict], list[str]]:
    pcap = os.path.join(outdir, sc.name + ".pcap")
    relay.set()                                   # no impairment unless the scenario asks
    caps = []
    for direction in ("northbound", "southbound"):
        srv_ports = sorted({s.port for s in sc.servers.values() if s.direction == direction})
        if not srv_ports:
            continue
        cap_ns, cap_if = (G.ns("router"), "r-c") if direction == "northbound" else (G.ns("mp"), "m-b")
        part = os.path.join(logdir, "%s.%s.pcap" % (sc.name, direction))
        err = os.path.join(logdir, "%s.%s.tcpdump.log" % (sc.name, direction))
        filt = "tcp and (%s)" % " or ".join("port %d" % p for p in srv_ports)
        with open(err, "wb") as ce:
            proc = subprocess.Popen(G.nsx(cap_ns, ["tcpdump", "-Z", "root", "-n", "-i", cap_if, "-s", "0", "-U",
                                                   "--immediate-mode", "-w", part, filt]),
                                    stdout=subprocess.DEVNULL, stderr=ce)
        caps.append((proc, part, err))
    for _, _, err in caps:
        G.wait_file_contains(err, b"listening on")
    runner = Runner(sc, env, logdir, relay)
    try:
        runner.execute(sc.steps)
        time.sleep(1.5)
    finally:
        for proc, _, _ in caps:
            G.stop(proc, signal.SIGINT)
        runner.close()
        relay.set()
    if os.path.exists(pcap):
        os.unlink(pcap)
    if len(caps) == 1:
        shutil.copy(caps[0][1], pcap)
    else:
        G.sh(["mergecap", "-F", "pcap", "-w", pcap] + [part for _, part, _ in caps])
    return rows_for(sc, pcap, env)


MEMORY_HARD = ("TLS 1.3: the certificate is encrypted, but the same server (ip:port + SNI) showed this certificate "
               "in clear in a TLS 1.2 handshake earlier in this capture (memory_age_s before)")
NO_MEMORY_HARD = ("TLS 1.3: the certificate is encrypted and this server's certificate was not seen in clear before "
                  "in this capture (the TLS 1.2 handshakes that show it, if any, come later)")


def _der(env: Env13, stem: str) -> bytes:
    with open(env.p(stem + ".pem"), "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)


def memory_of(e: Expect, c: wire13.Conn, wire: dict, env: Env13) -> float | None:
    """Seconds since the same server (ip:port + SNI) last showed the certificate it served to this
    connection in clear, or None."""
    der = _der(env, e.server_leaf)
    times = [o.server_certificate_time for o in wire.values()
             if o.server == c.server and o.server_leaf == der and o.server_certificate_time is not None
             and o.client_hellos and o.client_hellos[0].sni == e.server_name and o.server_certificate_time < c.syn_time]
    return c.syn_time - max(times) if times else None


def rows_for(sc: Scenario, pcap: str, env: Env13) -> tuple[list[dict], list[str]]:
    endpoints = {s.endpoint for s in sc.servers.values()}
    wire = wire13.connections(pcap, endpoints)
    tshark = G.observe(pcap, tuple(sorted({s.port for s in sc.servers.values()})))
    problems: list[str] = []
    rows = []
    seen = set()
    for e in sc.expects:
        cli = "%s:%d" % (e.server.client_ip, e.sport)
        key = (cli, e.server.endpoint)
        seen.add(key)
        c = wire.get(key)
        who = "%s %s -> %s (%s)" % (sc.name, cli, e.server.endpoint, e.stack)
        if c is None:
            problems.append("%s: connection not in the capture" % who)
            continue
        problems += ["%s: %s" % (who, p) for p in check(e, c)]
        ok = bool(e.result.get("ok"))
        cause, source, hard, age = e.cause, e.source, e.hard, None
        kind = e.kind
        if kind in ("full", "hrr", "mtls") and c.psk_offered:
            kind = ("resumption" if c.resumed else "psk_declined") + ("" if kind == "full" else "+" + kind)
        elif kind == "full" and c.resumed:
            kind = "resumption"
        if e.memory:
            age = memory_of(e, c, wire, env)
            if age is not None:
                cause, source, hard = e.true_cause, "memory", MEMORY_HARD
            else:
                hard = NO_MEMORY_HARD
        events = tshark.get(cli, [])
        rows.append({
            "pcap": os.path.basename(pcap),
            "scenario": sc.name,
            "client": cli,
            "server": e.server.endpoint,
            "server_name": e.server_name,
            "expected_cause": cause,
            "expected_warning": e.warning,
            "direction": e.server.direction,
            "rejected_by": e.rejected_by,
            "stacks": "%s -> %s" % (e.stack, e.server_stack),
            "client_outcome": "success" if ok else "failure",
            "capture_time": _dt.datetime.fromtimestamp(c.syn_time, _dt.timezone.utc).isoformat(
                timespec="milliseconds"),
            "observed": " ".join(events),
            "notes": G._wire_notes(e.notes, events),
            "client_error": e.result.get("error") if not ok else None,
            "true_cause": e.true_cause if e.true_cause is not None else e.cause,
            "cause_source": source,
            "memory_age_s": round(age, 1) if age is not None else None,
            "issue_class": e.issue_class,
            "kind": kind,
            "version": c.version,
            "psk_offered": c.psk_offered,
            "resumption_offered": c.resumption_offered,
            "resumed": c.resumed,
            "hrr": c.hrr,
            "http_status": e.result.get("status"),
            "hard": hard or None,
            "records": c.records,
        })
    extra = sorted(set(wire) - seen)
    if extra:
        problems.append("%s: connections nobody made: %s" % (sc.name, extra[:5]))
    rows.sort(key=lambda r: r["capture_time"])
    return rows, problems


def check(e: Expect, c: wire13.Conn) -> list[str]:
    """What the scenario says against what the client reported and the wire shows."""
    out = []
    ok = bool(e.result.get("ok"))
    if ok != e.ok:
        out.append("expected %s, client %s: %s" % ("success" if e.ok else "failure", "succeeded" if ok else "failed",
                                                  e.result.get("error")))
    if e.status is not None and e.result.get("status") != e.status:
        out.append("HTTP status %s, expected %s" % (e.result.get("status"), e.status))
    if e.resumed is not None and c.resumed != e.resumed:
        out.append("resumed on the wire: %s, expected %s" % (c.resumed, e.resumed))
    if e.psk is not None and c.psk_offered != e.psk:
        out.append("pre_shared_key offered: %s, expected %s" % (c.psk_offered, e.psk))
    if e.hrr is not None and c.hrr != e.hrr:
        out.append("HelloRetryRequest: %s, expected %s" % (c.hrr, e.hrr))
    if e.version is not None and c.version != e.version:
        out.append("version %s, expected %s" % (c.version, e.version))
    if e.error is not None and not re.search(e.error, e.result.get("error") or ""):
        out.append("client error %r does not match %r" % (e.result.get("error"), e.error))
    if not e.kind.startswith("health_tcp") and not c.client_hellos:
        out.append("no ClientHello")
    elif c.client_hellos and c.client_hellos[0].sni != e.server_name:
        out.append("SNI %s, expected %s" % (c.client_hellos[0].sni, e.server_name))
    return out


# --------------------------------------------------------------------------- preparation

EXTRA_LEAVES = {
    "server-good-new": ("api.example.test / backend.example.test by intermediate, valid (the certificate a fixed "
                        "rotation installs, new key)", [API, BE]),
    "server-shop": ("shop.example.test by intermediate, valid", [SHOP]),
}


def build_pki(pki_dir: str) -> None:
    """generate.py's PKI plus the leaves in EXTRA_LEAVES."""
    if os.path.isdir(pki_dir):
        shutil.rmtree(pki_dir)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    pki_mod.build(pki_dir, now)
    with open(os.path.join(pki_dir, "intermediate.pem"), "rb") as f:
        inter_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki_dir, "intermediate.key"), "rb") as f:
        inter_key = serialization.load_pem_private_key(f.read(), None)
    inter = pki_mod.Issued(inter_cert, inter_key)
    for stem, (text, sans) in EXTRA_LEAVES.items():
        leaf = pki_mod.issue(sans[0], inter, sans=sans, not_before=now - 7 * pki_mod.DAY,
                             not_after=now + 397 * pki_mod.DAY)
        prefix = os.path.join(pki_dir, stem)
        with open(prefix + ".pem", "wb") as f:
            f.write(leaf.pem)
        with open(prefix + ".key", "wb") as f:
            f.write(leaf.key_pem)
        with open(prefix + "-chain.pem", "wb") as f:
            f.write(leaf.pem + inter.pem)
        with open(os.path.join(pki_dir, "README.txt"), "a", encoding="utf-8") as f:
            f.write("%-18s %s\n" % (stem, text))


def prepare(env: Env13) -> None:
    G.prepare(env)
    os.makedirs(env.www, exist_ok=True)
    os.makedirs(env.sessions, exist_ok=True)
    with open(os.path.join(env.www, "ok.txt"), "w", encoding="ascii") as f:
        f.write("ok\n")
    # for s_server -HTTP: the file carries its own status line
    with open(os.path.join(env.www, "busy"), "w", encoding="ascii") as f:
        f.write("HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n")
    with open(os.path.join(env.www, "ok"), "w", encoding="ascii") as f:
        f.write("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "scenarios-tls13"))
    ap.add_argument("--only", nargs="*", help="run only these scenarios (keeps the other lines; reuses the PKI)")
    ap.add_argument("--keep-logs", help="copy client/server/tcpdump logs to this directory")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--ns-prefix", required=False, default="sc12",
                    help="namespace names PREFIX-client, -wan, -router, -mp, -backend (default %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    G.set_ns_prefix(args.ns_prefix)
    out = os.path.abspath(args.out)
    pki_dir = os.path.join(out, "pki")
    if args.list:
        for sc in scenarios(Env13(pki_dir, "/tmp"), Ports()):
            print("%-34s %-24s %3d conns, ports %s  %s" % (sc.name, sc.issue_class, len(sc.expects),
                                                        ",".join(str(s.port) for s in sc.servers.values()),
                                                        sc.description))
        return 0
    if os.geteuid() != 0:
        log.error("needs root (network namespaces, tcpdump)")
        return 2
    os.makedirs(out, exist_ok=True)
    if not args.only or not os.path.exists(os.path.join(pki_dir, "root.pem")):
        build_pki(pki_dir)
    tmp = tempfile.mkdtemp(prefix="tlsdiag-scen13-")
    rows: list[dict] = []
    problems: list[str] = []
    relay = Relay(tmp)
    try:
        env = Env13(pki_dir, tmp)
        prepare(env)
        all_sc = scenarios(env, Ports())
        todo = [sc for sc in all_sc if not args.only or sc.name in args.only]
        if args.only and len(todo) != len(set(args.only)):
            log.error("unknown scenario in --only; see --list")
            return 2
        G.setup(ROLES, LINKS)
        relay.start()
        for sc in todo:
            t0 = time.monotonic()
            r, p = run_scenario(sc, env, out, tmp, relay)
            rows += r
            problems += p
            log.info("%-34s %3d connection(s), %d bytes, %.0f s%s", sc.name, len(r),
                     os.path.getsize(os.path.join(out, sc.name + ".pcap")), time.monotonic() - t0,
                     ", %d PROBLEM(S)" % len(p) if p else "")
    finally:
        relay.stop()
        G.teardown(ROLES)
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for name in os.listdir(tmp):
                if name.endswith(".log") or name.endswith(".pcap"):
                    shutil.copy(os.path.join(tmp, name), args.keep_logs)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = G.write_expected(out, rows, [sc.name for sc in todo], [sc.name for sc in all_sc],
                            bool(args.only))
    for p in problems:
        log.error("%s", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
