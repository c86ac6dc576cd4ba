#!/usr/bin/env python3
"""Reproduce every TLS handshake-failure cause with real TLS stacks and capture each to a pcap.

Run as root (network namespaces, tcpdump):

    python3 tests/scenarios/generate.py --out tests/data/scenarios --examples examples

Topology (all inside namespaces this script creates and always deletes again; ``td-`` is the
default ``--ns-prefix``):

    td-client 10.10.1.2 --- 10.10.1.1 td-router 10.10.2.1 --- 10.10.2.2 td-mp 10.10.3.1 --- 10.10.3.2 td-backend
              (c-r)            (r-c)            (r-m)             (m-r)          (m-b)           (b-m)

Northbound cases run the TLS server in td-router (the Router terminates client TLS) and the
client in td-client, captured on the router's interface r-c.  Southbound cases run the client
(the Message Processor) in td-mp and the server in td-backend, captured on the MP's interface
m-b.  No forwarding is needed.  Every scenario has its own server port so the pcaps merge
without colliding connections.

Outputs: one pcap per scenario, ``expected.jsonl`` (one line per connection, in capture
order), the throwaway PKI under ``pki/``, and a merged ``gateway-failures.pcap`` (+ its
expected lines) in the examples directory.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import dpkt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))     # the repository, for tests.support
from tests.support import pki as pki_mod  # noqa: E402

log = logging.getLogger("scenarios")

#: namespaces are called PREFIX-ROLE; ``--ns-prefix`` changes the prefix so that two generators (or a
#: generator and the topology tests, which use the default) can run at the same time
NS_PREFIX = "td"
ROLES = ("client", "router", "mp", "backend")
# (role_a, if_a, addr_a, role_b, if_b, addr_b); interface names live inside the namespaces
LINKS = (
    ("client", "c-r", "10.10.1.2/24", "router", "r-c", "10.10.1.1/24"),
    ("router", "r-m", "10.10.2.1/24", "mp", "m-r", "10.10.2.2/24"),
    ("mp", "m-b", "10.10.3.1/24", "backend", "b-m", "10.10.3.2/24"),
)


def ns(role: str) -> str:
    """The namespace of a role (client, router, mp, backend) under the current prefix."""
    return "%s-%s" % (NS_PREFIX, role)


def set_ns_prefix(prefix: str) -> None:
    global NS_PREFIX
    if not prefix.isalnum() or len(prefix) > 8:
        raise ValueError("namespace prefix must be 1-8 letters/digits: %r" % prefix)
    NS_PREFIX = prefix


ROUTER, CLIENT = "10.10.1.1", "10.10.1.2"
BACKEND, MP = "10.10.3.2", "10.10.3.1"
GET = b"GET / HTTP/1.0\r\n\r\n"
JAVA_TLS10_SECURITY = (
    "jdk.tls.disabledAlgorithms=SSLv3, RC4, DES, MD5withRSA, DH keySize < 1024, EC keySize < 224, "
    "3DES_EDE_CBC, anon, NULL\n"
)

HS_NAMES = {0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket",
            8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange", 13: "CertificateRequest",
            14: "ServerHelloDone", 15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished"}
ALERT_NAMES = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
               42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
               45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
               49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
               71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
               90: "user_canceled", 109: "missing_extension", 110: "unsupported_extension",
               112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol"}


# --------------------------------------------------------------------------- scenario model

@dataclass
class Run:
    """One client connection inside a scenario (one expected.jsonl line)."""
    argv: list[str]
    ok: bool                       # the client is expected to get an HTTP response
    stack: str                     # client stack description
    cause: str | None = None       # expected_cause (None for a successful handshake)
    rejected_by: str | None = None
    notes: str = ""
    warning: str | None = None     # expected_warning on a successful handshake
    stdin: bytes = b""
    server_name: str | None = None  # SNI the client sends (None = none)


@dataclass
class Scenario:
    name: str
    port: int
    direction: str                 # northbound | southbound
    server: list[str]
    server_stack: str
    runs: list[Run]
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def server_ip(self) -> str:
        return ROUTER if self.direction == "northbound" else BACKEND

    @property
    def client_ip(self) -> str:
        return CLIENT if self.direction == "northbound" else MP

    @property
    def server_ns(self) -> str:
        return ns("router") if self.direction == "northbound" else ns("backend")

    @property
    def client_ns(self) -> str:
        return ns("client") if self.direction == "northbound" else ns("mp")

    @property
    def capture(self) -> tuple[str, str]:
        return (ns("router"), "r-c") if self.direction == "northbound" else (ns("mp"), "m-b")


class Env:
    """Paths of the PKI, the compiled Java client and its stores."""

    def __init__(self, pki_dir: str, tmp: str) -> None:
        self.pki = pki_dir
        self.tmp = tmp
        self.java_cp = os.path.join(tmp, "java")
        self.truststore = os.path.join(tmp, "trust.p12")
        self.truststore_other = os.path.join(tmp, "trust-other.p12")  # only the untrusted root
        self.java_tls10 = os.path.join(tmp, "java-tls10.security")
        self.pytls = os.path.join(HERE, "pytls.py")

    def p(self, name: str) -> str:
        return os.path.join(self.pki, name)

    def keystore(self, stem: str) -> str:
        return os.path.join(self.tmp, stem + ".p12")


# --------------------------------------------------------------------------- command builders

def s_server(env: Env, sc_port: int, ip: str, leaf: str = "server-good", chain: str | None = "intermediate",
             extra: list[str] | None = None) -> list[str]:
    argv = ["openssl", "s_server", "-accept", "%s:%d" % (ip, sc_port), "-www",
            "-cert", env.p(leaf + ".pem"), "-key", env.p(leaf + ".key")]
    if chain:
        argv += ["-cert_chain", env.p(chain + ".pem")]
    return argv + (extra or [])


def py_server(env: Env, port: int, ip: str, leaf: str = "server-good", extra: list[str] | None = None
              ) -> list[str]:
    return [sys.executable, env.pytls, "server", "--bind", ip, "--port", str(port),
            "--cert", env.p(leaf + "-chain.pem"), "--key", env.p(leaf + ".key")] + (extra or [])


def s_client(env: Env, ip: str, port: int, sni: str | None, flags: list[str], verify: bool = True,
             cert: str | None = None, cafile: str = "root.pem") -> list[str]:
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (ip, port), "-ign_eof", "-CAfile", env.p(cafile)]
    argv += ["-servername", sni] if sni else ["-noservername"]
    if verify:
        argv += ["-verify_return_error"]
        if sni:
            argv += ["-verify_hostname", sni]
    if cert:
        argv += ["-cert", env.p(cert + ".pem"), "-key", env.p(cert + ".key"),
                 "-cert_chain", env.p(cert + "-chain.pem")]
    return argv + flags


def curl(env: Env, ip: str, port: int, name: str, flags: list[str], verify: bool = True) -> list[str]:
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "HTTP %{http_code}\n", "--max-time", "10",
            "--resolve", "%s:%d:%s" % (name, port, ip), "https://%s:%d/" % (name, port)]
    argv += ["--cacert", env.p("root.pem")] if verify else ["-k"]
    return argv + flags


def py_client(env: Env, ip: str, port: int, sni: str | None, flags: list[str]) -> list[str]:
    argv = [sys.executable, env.pytls, "client", "--host", ip, "--port", str(port),
            "--cafile", env.p("root.pem")]
    argv += ["--servername", sni] if sni else ["--no-sni"]
    return argv + flags


def java(env: Env, ip: str, port: int, sni: str | None, flags: list[str], jvm: list[str] | None = None,
         keystore: str | None = None, truststore: str | None = None) -> list[str]:
    argv = ["java"] + (jvm or []) + ["-cp", env.java_cp, "TlsClient", "--host", ip, "--port", str(port),
                                     "--truststore", truststore or env.truststore]
    if sni:
        argv += ["--servername", sni]
    if keystore:
        argv += ["--keystore", env.keystore(keystore)]
    return argv + flags


OSSL = "openssl s_client 3.0"
OSSL_SRV = "openssl s_server 3.0"
CURL = "curl 7.88/OpenSSL 3.0"
PY = "Python 3.11 ssl (OpenSSL 3.0)"
PY_SRV = "Python 3.11 ssl server (OpenSSL 3.0)"
JAVA = "Java 17 JSSE"

# --------------------------------------------------------------------------- the scenarios


def scenarios(env: Env) -> list[Scenario]:
    R, B = ROUTER, BACKEND
    API, BE, MYORG = "api.example.test", "backend.example.test", "myorg.example.test"
    out: list[Scenario] = []

    def add(name: str, port: int, direction: str, server: Callable[[str, int], list[str]], server_stack: str,
            runs: Callable[[str, int], list[Run]], description: str, **extra: object) -> None:
        ip = R if direction == "northbound" else B
        out.append(Scenario(name, port, direction, server(ip, port), server_stack, runs(ip, port),
                            description, dict(extra)))

    # ---- successful controls: every client stack, TLS 1.2 and 1.3, both directions
    def controls(ver: str, name: str) -> Callable[[str, int], list[Run]]:
        def runs(ip: str, port: int) -> list[Run]:
            o = ["-tls1_2"] if ver == "1.2" else ["-tls1_3"]
            c = ["--tlsv1.2", "--tls-max", "1.2"] if ver == "1.2" else ["--tlsv1.3"]
            p = (["--min-version", "TLSv1.2", "--max-version", "TLSv1.2"] if ver == "1.2"
                 else ["--min-version", "TLSv1.3"])
            j = ["--protocols", "TLSv1.%s" % ver[-1]]
            return [
                Run(s_client(env, ip, port, name, o), True, OSSL, server_name=name, stdin=GET),
                Run(curl(env, ip, port, name, c), True, CURL, server_name=name),
                Run(py_client(env, ip, port, name, p), True, PY, server_name=name),
                Run(java(env, ip, port, name, j), True, JAVA, server_name=name),
            ]
        return runs

    add("ok_tls12_north", 8401, "northbound", lambda ip, port: s_server(env, port, ip), OSSL_SRV,
        controls("1.2", API), "TLS 1.2 successes from openssl, curl, Python ssl and JSSE (good chain)")
    add("ok_tls13_north", 8402, "northbound", lambda ip, port: py_server(env, port, ip), PY_SRV,
        controls("1.3", API), "TLS 1.3 successes from openssl, curl, Python ssl and JSSE (good chain)")
    add("ok_tls12_south", 8403, "southbound", lambda ip, port: py_server(env, port, ip), PY_SRV,
        controls("1.2", BE), "TLS 1.2 successes from the MP host with every stack")
    add("ok_tls13_south", 8404, "southbound", lambda ip, port: s_server(env, port, ip), OSSL_SRV,
        controls("1.3", BE), "TLS 1.3 successes from the MP host with every stack")

    # ---- protocol mismatch
    tls10 = ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]
    TLS10_NOTE = ("client offers only TLSv1.2, server speaks only TLSv1.0. Unlike the cause table's picture, "
                  "the OpenSSL client sends no supported_versions extension (legacy_version 0x0303 only), so the "
                  "server cannot see the client's minimum and answers with a TLSv1.0 ServerHello, Certificate "
                  "and ServerHelloDone; the CLIENT then refuses that version with a fatal protocol_version alert")
    add("protocol_tls10_server_north", 8410, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=tls10), OSSL_SRV + " -tls1 (TLSv1.0 only)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]), True,
                OSSL + " -tls1", server_name=API, stdin=GET, notes="success at TLSv1.0 (teaches the profile)"),
            Run(curl(env, ip, port, API, ["--tlsv1.0", "--tls-max", "1.0", "--ciphers", "DEFAULT@SECLEVEL=0"]),
                True, CURL + " --tls-max 1.0", server_name=API, notes="success at TLSv1.0"),
            Run(s_client(env, ip, port, API, ["-tls1_2"]), False, OSSL + " -tls1_2", "protocol_mismatch",
                "client", server_name=API, stdin=GET, notes=TLS10_NOTE),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL + " TLSv1.2 only",
                "protocol_mismatch", "client", server_name=API, notes=TLS10_NOTE),
        ], "TLSv1.0-only Router virtual host; TLSv1.0 clients succeed, TLSv1.2-only clients are refused")
    add("protocol_tls10_server_south", 8411, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=tls10), OSSL_SRV + " -tls1 (TLSv1.0 only)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1"],
                     jvm=["-Djava.security.properties=" + env.java_tls10]), True, JAVA + " TLSv1 re-enabled",
                server_name=BE, notes="MP pinned to TLSv1.0 (the vendor's fix) succeeds"),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1"],
                     jvm=["-Djava.security.properties=" + env.java_tls10]), True, JAVA + " TLSv1 re-enabled",
                server_name=BE, notes="MP pinned to TLSv1.0 succeeds"),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA + " TLSv1.2 only",
                "protocol_mismatch", "server", server_name=BE,
                notes="the vendor's case: MP offers only TLSv1.2, backend only TLSv1.0"),
        ], "TLSv1.0-only backend; JSSE with TLSv1 re-enabled succeeds, TLSv1.2-only JSSE is refused")
    add("protocol_tls13_client_north", 8412, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2"]), OSSL_SRV + " -tls1_2 (TLSv1.2 only)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), True, OSSL + " -tls1_2", server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_3"]), False, OSSL + " -tls1_3", "protocol_mismatch",
                "server", server_name=API, stdin=GET, notes="TLSv1.3-only client vs TLSv1.2-only server"),
            Run(py_client(env, ip, port, API, ["--min-version", "TLSv1.3"]), False, PY + " TLSv1.3 only",
                "protocol_mismatch", "server", server_name=API, notes="TLSv1.3-only client vs TLSv1.2-only server"),
        ], "TLSv1.2-only server, TLSv1.3-only clients")
    add("protocol_tls13_client_south", 8413, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2"]), OSSL_SRV + " -tls1_2 (TLSv1.2 only)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), True, JAVA + " TLSv1.2", server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.3"]), False, JAVA + " TLSv1.3 only",
                "protocol_mismatch", "server", server_name=BE, notes="TLSv1.3-only MP vs TLSv1.2-only backend"),
        ], "TLSv1.2-only backend, TLSv1.3-only JSSE client")

    # ---- cipher suite mismatch
    add("cipher_tls12_north", 8420, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"]),
        OSSL_SRV + " -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), True, OSSL + " -tls1_2", server_name=API, stdin=GET),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), True, CURL, server_name=API),
            Run(s_client(env, ip, port, API, ["-tls1_2", "-cipher", "AES128-SHA"]), False,
                OSSL + " -tls1_2 -cipher AES128-SHA", "cipher_mismatch", "server", server_name=API, stdin=GET,
                notes="disjoint TLS 1.2 suites"),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "AES128-SHA:AES256-SHA"]),
                False, CURL + " --ciphers AES128-SHA:AES256-SHA", "cipher_mismatch", "server", server_name=API,
                notes="disjoint TLS 1.2 suites"),
        ], "server with a single ECDHE-RSA-AES256-GCM suite; clients offering only RSA-kx CBC suites")
    add("cipher_tls13_north", 8421, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"]),
        OSSL_SRV + " -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_3"]), True, OSSL + " -tls1_3", server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"]), False,
                OSSL + " -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256", "cipher_mismatch", "server",
                server_name=API, stdin=GET, notes="disjoint TLS 1.3 suites"),
        ], "TLS 1.3 server with only TLS_AES_256_GCM_SHA384; client with only CHACHA20")
    add("cipher_tls12_south", 8422, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"]),
        OSSL_SRV + " -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), True, JAVA + " default suites",
                server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2", "--ciphers",
                                         "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]),
                False, JAVA + " AES-GCM suites only", "cipher_mismatch", "server", server_name=BE,
                notes="MP offers only ECDHE-RSA AES-GCM suites; backend only CHACHA20"),
        ], "backend with a single CHACHA20 suite; MP restricted to AES-GCM suites")

    # ---- SNI
    add("sni_required_north", 8430, "northbound",
        lambda ip, port: py_server(env, port, ip, extra=["--require-sni"]), PY_SRV + " (refuses ClientHello without SNI)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), True, OSSL + " -servername", server_name=API, stdin=GET),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), True, CURL, server_name=API),
            Run(s_client(env, ip, port, None, ["-tls1_2"]), False, OSSL + " -noservername", "sni_required",
                "server", stdin=GET, notes="same client without server_name"),
        ], "SNI-only server: with server_name it works, without it the server alerts")
    add("sni_required_south", 8431, "southbound",
        lambda ip, port: py_server(env, port, ip, extra=["--require-sni"]), PY_SRV + " (refuses ClientHello without SNI)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), True, JAVA, server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.3"]), True, JAVA, server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], jvm=["-Djsse.enableSNIExtension=false"]),
                False, JAVA + " -Djsse.enableSNIExtension=false", "sni_required", "server",
                notes="the vendor's case: MP with jsse.enableSNIExtension=false"),
        ], "SNI-only backend; MP with SNI succeeds, MP with jsse.enableSNIExtension=false is refused")
    add("sni_unrecognized_south", 8432, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=["-servername", "other.example.test",
                                                     "-cert2", env.p("server-good.pem"),
                                                     "-key2", env.p("server-good.key")]),
        OSSL_SRV + " -servername other.example.test (warning unrecognized_name on other names)",
        lambda ip, port: [
            Run(s_client(env, ip, port, BE, ["-tls1_2"]), True, OSSL + " -servername backend.example.test",
                server_name=BE, stdin=GET,
                notes="OpenSSL ignores the warning unrecognized_name alert and completes"),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "sni_unrecognized", "client",
                server_name=BE, notes="JSSE treats the warning unrecognized_name as fatal"),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], jvm=["-Djsse.enableSNIExtension=false"]),
                True, JAVA + " -Djsse.enableSNIExtension=false",
                notes="without SNI the server has nothing to complain about"),
        ], "server that warns unrecognized_name for names it does not know")

    # ---- hostname mismatch
    add("hostname_mismatch_north", 8440, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-wrongname", extra=["-tls1_2"]),
        OSSL_SRV + " (something.example.test served)",
        lambda ip, port: [
            Run(s_client(env, ip, port, MYORG, ["-tls1_2"], verify=False), True, OSSL + " (no hostname check)",
                warning="hostname_mismatch", server_name=MYORG, stdin=GET,
                notes="lax client accepts something.example.test for myorg.example.test"),
            Run(curl(env, ip, port, MYORG, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL, "hostname_mismatch",
                "client", server_name=MYORG,
                notes="curl 7.88 checks the host name itself AFTER the handshake completes: no handshake alert, "
                      "it sends an encrypted alert (close_notify) and closes without sending data"),
            Run(py_client(env, ip, port, MYORG, ["--max-version", "TLSv1.2"]), False, PY, "hostname_mismatch",
                "client", server_name=MYORG, notes="verifying client rejects the name"),
        ], "certificate for something.example.test served for myorg.example.test")
    add("hostname_mismatch_south", 8441, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-wrongname", extra=["-tls1_2"]),
        OSSL_SRV + " (something.example.test served)",
        lambda ip, port: [
            Run(java(env, ip, port, MYORG, ["--no-verify"]), True, JAVA + " trust-all (no checks)",
                warning="hostname_mismatch", server_name=MYORG,
                notes="lax client accepts something.example.test for myorg.example.test"),
            Run(java(env, ip, port, MYORG, ["--protocols", "TLSv1.2"]), False, JAVA + " HTTPS identification",
                "hostname_mismatch", "client", server_name=MYORG, notes="JSSE endpoint identification rejects it"),
        ], "backend serving something.example.test for myorg.example.test")
    add("hostname_close_after_handshake_north", 8442, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-wrongname", extra=["-tls1_2"]),
        OSSL_SRV + " (something.example.test served)",
        lambda ip, port: [
            Run(py_client(env, ip, port, MYORG, ["--max-version", "TLSv1.2", "--check-hostname-after"]), False,
                PY + " (checks the name after the handshake)", "hostname_mismatch", "client", server_name=MYORG,
                notes="handshake completes, the client checks the name itself and closes without sending data"),
        ], "complete handshake, then the client closes without data because of the name")

    # ---- chain / validity / trust
    add("incomplete_chain_north", 8450, "northbound",
        lambda ip, port: s_server(env, port, ip, chain=None, extra=["-tls1_2"]),
        OSSL_SRV + " (leaf without intermediate)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), False, OSSL, "incomplete_chain", "client",
                server_name=API, stdin=GET),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL, "incomplete_chain",
                "client", server_name=API),
        ], "server sends the leaf without its intermediate")
    add("incomplete_chain_south", 8451, "southbound",
        lambda ip, port: s_server(env, port, ip, chain=None, extra=["-tls1_2"]),
        OSSL_SRV + " (leaf without intermediate)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "incomplete_chain", "client",
                server_name=BE),
        ], "backend sends the leaf without its intermediate")
    add("expired_north", 8460, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-expired", extra=["-tls1_2"]),
        OSSL_SRV + " (expired leaf)",
        lambda ip, port: [
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL, "expired_certificate",
                "client", server_name=API),
            Run(s_client(env, ip, port, API, ["-tls1_2"]), False, OSSL, "expired_certificate", "client",
                server_name=API, stdin=GET),
        ], "server certificate expired")
    add("expired_south", 8461, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-expired", extra=["-tls1_2"]),
        OSSL_SRV + " (expired leaf)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "expired_certificate", "client",
                server_name=BE),
        ], "backend certificate expired")
    add("not_yet_valid_north", 8462, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-notyet", extra=["-tls1_2"]),
        OSSL_SRV + " (leaf not yet valid)",
        lambda ip, port: [
            Run(py_client(env, ip, port, API, ["--max-version", "TLSv1.2"]), False, PY,
                "not_yet_valid_certificate", "client", server_name=API),
        ], "server certificate not valid yet")
    add("not_yet_valid_south", 8463, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-notyet", extra=["-tls1_2"]),
        OSSL_SRV + " (leaf not yet valid)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "not_yet_valid_certificate",
                "client", server_name=BE),
        ], "backend certificate not valid yet")
    add("untrusted_root_north", 8470, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-untrusted", chain="untrusted-root",
                                  extra=["-tls1_2"]),
        OSSL_SRV + " (leaf + its root, root not trusted)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), False, OSSL, "unknown_certificate", "client",
                server_name=API, stdin=GET),
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL, "unknown_certificate",
                "client", server_name=API),
        ], "certificate from a root the client does not trust")
    add("self_signed_north", 8471, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-selfsigned", chain=None, extra=["-tls1_2"]),
        OSSL_SRV + " (self-signed leaf)",
        lambda ip, port: [
            Run(py_client(env, ip, port, API, ["--max-version", "TLSv1.2"]), False, PY, "unknown_certificate",
                "client", server_name=API),
        ], "self-signed server certificate")
    add("self_signed_south", 8472, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-selfsigned", chain=None, extra=["-tls1_2"]),
        OSSL_SRV + " (self-signed leaf)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "unknown_certificate", "client",
                server_name=BE),
        ], "self-signed backend certificate")
    add("untrusted_root_south", 8473, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-untrusted", chain="untrusted-root",
                                  extra=["-tls1_2"]),
        OSSL_SRV + " (leaf + its root, root not trusted)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "unknown_certificate", "client",
                server_name=BE),
        ], "backend certificate from a root the MP does not trust")

    add("wrong_intermediate_north", 8452, "northbound",
        lambda ip, port: s_server(env, port, ip, chain="untrusted-root", extra=["-tls1_2"]),
        OSSL_SRV + " (leaf + an unrelated CA instead of its intermediate)",
        lambda ip, port: [
            Run(curl(env, ip, port, API, ["--tlsv1.2", "--tls-max", "1.2"]), False, CURL, "incomplete_chain",
                "client", server_name=API,
                notes="the chain's second certificate is not the leaf's issuer (issuer/subject mismatch)"),
        ], "server sends the wrong CA certificate after its leaf")
    add("wrong_intermediate_south", 8453, "southbound",
        lambda ip, port: s_server(env, port, ip, chain="untrusted-root", extra=["-tls1_2"]),
        OSSL_SRV + " (leaf + an unrelated CA instead of its intermediate)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA, "incomplete_chain", "client",
                server_name=BE, notes="the chain's second certificate is not the leaf's issuer"),
        ], "backend sends the wrong CA certificate after its leaf")
    add("client_truststore_north", 8474, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2"]), OSSL_SRV + " (good chain)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"]), True, OSSL, server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_2"], cafile="untrusted-root.pem"), False,
                OSSL + " -CAfile <another root>", "unknown_certificate", "client", server_name=API, stdin=GET,
                notes="the chain is valid against pki/root.pem; this client's truststore lacks that root, "
                      "and its unknown_ca alert says so"),
        ], "good chain, but the client's truststore does not hold the root")
    add("client_truststore_south", 8475, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_2"]), OSSL_SRV + " (good chain)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), True, JAVA, server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], truststore=env.truststore_other), False,
                JAVA + " truststore without the root", "certificate_rejected", "client", server_name=BE,
                notes="the chain is valid against pki/root.pem, the MP's truststore lacks that root, and JSSE's "
                      "certificate_unknown alert does not say why: neither the certificate nor the alert names "
                      "the problem"),
        ], "good chain, but the MP's truststore does not hold the root")

    # ---- mutual TLS
    mtls = ["-tls1_2", "-Verify", "1", "-CAfile", env.p("root.pem"), "-verify_return_error"]
    add("mtls_north", 8480, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=mtls), OSSL_SRV + " -Verify 1 (client cert required)",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_2"], cert="client-good"), True, OSSL + " with client cert",
                server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_2"]), False, OSSL + " without client cert",
                "client_certificate_missing", "server", server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_2"], cert="client-expired"), False,
                OSSL + " with expired client cert", "expired_certificate", "server", server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_2"], cert="client-unknown"), False,
                OSSL + " with client cert from an unknown CA", "unknown_certificate", "server", server_name=API,
                stdin=GET),
        ], "Router requires client certificates (TLS 1.2, so they are visible)")
    add("mtls_south", 8481, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=mtls), OSSL_SRV + " -Verify 1 (client cert required)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], keystore="client-good"), True,
                JAVA + " with keystore", server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"]), False, JAVA + " without keystore",
                "client_certificate_missing", "server", server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], keystore="client-expired"), False,
                JAVA + " with expired client cert", "expired_certificate", "server", server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], keystore="client-unknown"), False,
                JAVA + " with client cert from an unknown CA", "client_certificate_missing", "server",
                server_name=BE,
                notes="JSSE's key manager withholds a certificate whose issuer is not in the server's "
                      "certificate_authorities list: it sends an EMPTY Certificate, so the wire shows a missing "
                      "client certificate, not an unknown one"),
        ], "backend requires client certificates from the MP")
    add("mtls_no_ca_names_south", 8483, "southbound",
        lambda ip, port: s_server(env, port, ip, extra=mtls + ["-no_ca_names"]),
        OSSL_SRV + " -Verify 1 -no_ca_names",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], keystore="client-good"), True,
                JAVA + " with keystore", server_name=BE),
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.2"], keystore="client-unknown"), False,
                JAVA + " with client cert from an unknown CA", "unknown_certificate", "server", server_name=BE,
                notes="no CA names in the CertificateRequest, so JSSE sends its certificate"),
        ], "backend requires client certificates but sends no CA names; MP presents an unknown-CA cert")
    add("mtls_tls13_north", 8482, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_3"] + mtls[1:]),
        OSSL_SRV + " -tls1_3 -Verify 1",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_3"], cert="client-good"), True, OSSL + " with client cert",
                server_name=API, stdin=GET),
            Run(s_client(env, ip, port, API, ["-tls1_3"]), False, OSSL + " without client cert",
                "client_certificate_missing", "server", server_name=API, stdin=GET,
                notes="TLS 1.3: CertificateRequest and the server's alert are encrypted; the client's first "
                      "encrypted record (25 bytes) is an empty Certificate"),
        ], "client certificate required over TLS 1.3")

    # ---- TLS 1.3 failures after ServerHello
    OSSL13 = ("certificate encrypted (TLS 1.3), but OpenSSL-family clients send their alert in CLEARTEXT "
              "(record type 21) before switching to handshake keys, so certificate_expired is readable; "
              "encrypted_failure would be the answer only if the alert were hidden too")
    add("tls13_cert_rejected_north", 8490, "northbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-expired", extra=["-tls1_3"]),
        OSSL_SRV + " -tls1_3 (expired leaf)",
        lambda ip, port: [
            Run(curl(env, ip, port, API, ["--tlsv1.3"]), False, CURL + " TLSv1.3", "expired_certificate", "client",
                server_name=API, notes=OSSL13),
            Run(py_client(env, ip, port, API, ["--min-version", "TLSv1.3"]), False, PY + " TLSv1.3",
                "expired_certificate", "client", server_name=API, notes=OSSL13),
            Run(java(env, ip, port, API, ["--protocols", "TLSv1.3"]), False, JAVA + " TLSv1.3",
                "encrypted_failure", "client", server_name=API,
                notes="JSSE encrypts its alert with the handshake keys: certificate and reason both hidden"),
        ], "TLS 1.3: the client rejects the (encrypted) expired certificate")
    add("tls13_cert_rejected_south", 8491, "southbound",
        lambda ip, port: s_server(env, port, ip, leaf="server-wrongname", extra=["-tls1_3"]),
        OSSL_SRV + " -tls1_3 (something.example.test served)",
        lambda ip, port: [
            Run(java(env, ip, port, BE, ["--protocols", "TLSv1.3"]), False, JAVA + " TLSv1.3",
                "encrypted_failure", "client", server_name=BE,
                notes="TLS 1.3: JSSE rejects the name; certificate and alert are encrypted"),
        ], "TLS 1.3: the MP rejects the (encrypted) certificate")
    # ---- TLS 1.3 key-exchange groups (HelloRetryRequest)
    add("groups_tls13_north", 8423, "northbound",
        lambda ip, port: s_server(env, port, ip, extra=["-tls1_3", "-groups", "P-384"]),
        OSSL_SRV + " -tls1_3 -groups P-384",
        lambda ip, port: [
            Run(s_client(env, ip, port, API, ["-tls1_3"]), True, OSSL + " -tls1_3 (key_share x25519)",
                server_name=API, stdin=GET, notes="HelloRetryRequest for P-384, then success"),
            Run(s_client(env, ip, port, API, ["-tls1_3", "-groups", "X25519:P-256"]), False,
                OSSL + " -tls1_3 -groups X25519:P-256", "cipher_mismatch", "server", server_name=API, stdin=GET,
                notes="no common key-exchange group: not a cipher suite, but the same shape and the same kind of "
                      "fix (offer what the server has); the server's handshake_failure comes right after the "
                      "ClientHello"),
        ], "TLS 1.3 server with only P-384: HelloRetryRequest success, and a client with no common group")

    # ---- no alert at all
    add("server_reset_north", 8499, "northbound",
        lambda ip, port: ["openssl", "s_server", "-accept", "%s:%d" % (ip, port), "-cert",
                          env.p("server-good.pem"), "-key", env.p("server-good.key"), "-cert_chain",
                          env.p("intermediate.pem")],
        OSSL_SRV + " without -www, stdin at EOF (drops every connection)",
        lambda ip, port: [
            Run(curl(env, ip, port, API, ["--tlsv1.2"]), False, CURL, "unknown", "server", server_name=API,
                notes="the server closes the connection without any alert; nothing on the wire names a cause"),
        ], "broken server: no alert, the connection is just closed", stdin_eof=True)
    return out


# --------------------------------------------------------------------------- netns plumbing

def sh(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, **kw)


def nsx(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns] + argv


def teardown(roles: tuple[str, ...] = ROLES) -> None:
    existing = sh(["ip", "netns", "list"]).stdout.decode()
    for name in (ns(r) for r in roles):
        if any(line.split()[0] == name for line in existing.splitlines() if line.strip()):
            sh(["ip", "netns", "del", name], check=False)


def setup(roles: tuple[str, ...] = ROLES, links: tuple[tuple[str, ...], ...] = LINKS) -> None:
    teardown(roles)
    for role in roles:
        sh(["ip", "netns", "add", ns(role)])
        sh(nsx(ns(role), ["ip", "link", "set", "lo", "up"]))
    for role_a, if_a, addr_a, role_b, if_b, addr_b in links:
        ns_a, ns_b = ns(role_a), ns(role_b)
        sh(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for name, ifn, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            if addr:
                sh(nsx(name, ["ip", "addr", "add", addr, "dev", ifn]))
            sh(nsx(name, ["ip", "link", "set", ifn, "up"]))
            # offloads off on both ends: otherwise the capture holds 64 KB super-frames
            sh(nsx(name, ["ethtool", "-K", ifn, "tso", "off", "gso", "off", "gro", "off", "tx", "off"]))
    log.info("namespaces %s up", ", ".join(ns(r) for r in roles))


def wait_listen(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh(nsx(ns, ["ss", "-Hltn", "sport = :%d" % port])).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError("server on port %d in %s did not start listening" % (port, ns))


def wait_file_contains(path: str, needle: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            if needle in f.read():
                return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %r in %s" % (needle, path))


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --------------------------------------------------------------------------- preparation

def prepare(env: Env) -> None:
    os.makedirs(env.java_cp, exist_ok=True)
    sh(["javac", "-d", env.java_cp, os.path.join(HERE, "TlsClient.java")])
    if os.path.exists(env.truststore):
        os.unlink(env.truststore)
    sh(["keytool", "-importcert", "-noprompt", "-alias", "tlsdiag-root", "-file", env.p("root.pem"),
        "-keystore", env.truststore, "-storetype", "PKCS12", "-storepass", "changeit"])
    if os.path.exists(env.truststore_other):
        os.unlink(env.truststore_other)
    sh(["keytool", "-importcert", "-noprompt", "-alias", "other-root", "-file", env.p("untrusted-root.pem"),
        "-keystore", env.truststore_other, "-storetype", "PKCS12", "-storepass", "changeit"])
    for stem in ("client-good", "client-expired", "client-unknown"):
        sh(["openssl", "pkcs12", "-export", "-in", env.p(stem + "-chain.pem"), "-inkey", env.p(stem + ".key"),
            "-name", stem, "-out", env.keystore(stem), "-passout", "pass:changeit"])
    with open(env.java_tls10, "w", encoding="ascii") as f:
        f.write(JAVA_TLS10_SECURITY)


# --------------------------------------------------------------------------- pcap inspection

def connections(pcap: str) -> list[tuple[float, str, str]]:
    """(time of SYN, client ip:port, server ip:port) for every connection, in SYN order."""
    out = []
    with open(pcap, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                src = "%s:%d" % (".".join(str(b) for b in ip.src), tcp.sport)
                dst = "%s:%d" % (".".join(str(b) for b in ip.dst), tcp.dport)
                if not any(c == src and s == dst for _, c, s in out):
                    out.append((ts, src, dst))
    return out


TSHARK_FIELDS = ["tcp.stream", "ip.src", "tcp.srcport", "tcp.flags.fin", "tcp.flags.reset",
                 "tls.record.content_type", "tls.record.opaque_type", "tls.handshake.type", "tls.alert_message.level",
                 "tls.alert_message.desc", "tls.handshake.extensions_server_name",
                 "tls.handshake.extensions.supported_version", "tls.handshake.version", "tls.handshake.ciphersuite"]


def observe(pcap: str, port: int | tuple[int, ...]) -> dict[str, list[str]]:
    """Per client endpoint, the TLS messages and closes seen on the wire, as short strings
    (``port``: the server port, or all server ports of a capture with several servers)."""
    ports = (port,) if isinstance(port, int) else tuple(port)
    decode = sum((["-d", "tcp.port==%d,tls" % p] for p in ports), [])
    res = sh(["tshark", "-r", pcap] + decode + ["-T", "fields", "-E", "separator=|",
              "-E", "occurrence=a", "-E", "aggregator=,"] + sum((["-e", f] for f in TSHARK_FIELDS), []))
    by_stream: dict[str, list[str]] = {}
    client_of: dict[str, str] = {}
    for line in res.stdout.decode().splitlines():
        cols = line.split("|")
        if len(cols) != len(TSHARK_FIELDS):
            continue
        d = dict(zip(TSHARK_FIELDS, cols))
        stream = d["tcp.stream"]
        side = "S" if d["tcp.srcport"] in {str(p) for p in ports} else "C"
        if side == "C":
            client_of.setdefault(stream, "%s:%s" % (d["ip.src"], d["tcp.srcport"]))
        ev = by_stream.setdefault(stream, [])
        ctypes = [c for c in d["tls.record.content_type"].split(",") if c]
        hs = [HS_NAMES.get(int(h), "hs%s" % h) for h in d["tls.handshake.type"].split(",") if h]
        levels = [x for x in d["tls.alert_message.level"].split(",") if x]
        descs = [x for x in d["tls.alert_message.desc"].split(",") if x]
        parts: list[str] = []
        if "1" in d["tls.handshake.type"].split(","):
            sni = d["tls.handshake.extensions_server_name"] or "-"
            parts.append("ClientHello(sni=%s)" % sni)
            hs = [h for h in hs if h != "ClientHello"]
        parts += hs
        if ctypes.count("20"):
            parts.append("ChangeCipherSpec")
        for lvl, desc in zip(levels, descs):
            parts.append("Alert(%s,%s)" % ("fatal" if lvl == "2" else "warning" if lvl == "1" else lvl,
                                          ALERT_NAMES.get(int(desc), desc)))
        n_enc_alert = ctypes.count("21") - len(descs)
        parts += ["EncryptedAlert"] * max(0, n_enc_alert)
        if [o for o in d["tls.record.opaque_type"].split(",") if o]:
            parts.append("Encrypted")  # TLS 1.3 encrypted record (handshake, alert or data)
        elif ctypes.count("23"):
            parts.append("AppData")
        if d["tcp.flags.reset"] == "1":
            parts.append("RST")
        elif d["tcp.flags.fin"] == "1":
            parts.append("FIN")
        for part in parts:
            item = "%s:%s" % (side, part)
            if ev and ev[-1] == item and part in ("AppData", "Encrypted"):
                continue
            ev.append(item)
    return {client_of.get(s, "?"): ev for s, ev in by_stream.items()}


# --------------------------------------------------------------------------- running

@dataclass
class Result:
    scenario: Scenario
    run: Run
    rc: int
    stdout: str
    stderr: str


def run_scenario(sc: Scenario, env: Env, outdir: str, logdir: str) -> list[dict]:
    pcap = os.path.join(outdir, sc.name + ".pcap")
    if os.path.exists(pcap):
        os.unlink(pcap)
    srv_log = open(os.path.join(logdir, sc.name + ".server.log"), "wb")
    cap_err = os.path.join(logdir, sc.name + ".tcpdump.log")
    # stdin stays open (a pipe) unless the scenario wants s_server's "stdin at EOF" behaviour
    server = subprocess.Popen(nsx(sc.server_ns, sc.server),
                              stdin=subprocess.DEVNULL if sc.extra.get("stdin_eof") else subprocess.PIPE,
                              stdout=srv_log,
                              stderr=subprocess.STDOUT, cwd=env.tmp)
    tcpdump = None
    results: list[Result] = []
    try:
        wait_listen(sc.server_ns, sc.port)
        cap_ns, cap_if = sc.capture
        with open(cap_err, "wb") as ce:
            tcpdump = subprocess.Popen(nsx(cap_ns, ["tcpdump", "-Z", "root", "-n", "-i", cap_if, "-s", "0", "-U",
                                                    "--immediate-mode",
                                                    "-w", pcap, "tcp port %d" % sc.port]),
                                       stdout=subprocess.DEVNULL, stderr=ce)
        wait_file_contains(cap_err, b"listening on")
        for run in sc.runs:
            try:
                cp = subprocess.run(nsx(sc.client_ns, run.argv), input=run.stdin, capture_output=True,
                                    timeout=30, cwd=env.tmp)
                rc, out, err = cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")
            except subprocess.TimeoutExpired as exc:
                rc, out, err = -999, (exc.stdout or b"").decode(errors="replace"), "timeout"
            results.append(Result(sc, run, rc, out, err))
            time.sleep(0.4)
        # libpcap's TPACKET_V3 ring hands packets over per block (1 s timeout); immediate mode
        # avoids that, and the pause lets the last FIN/ACKs arrive before SIGINT.
        time.sleep(1.2)
    finally:
        if tcpdump is not None:
            stop(tcpdump, signal.SIGINT)
        stop(server)
        srv_log.close()
    with open(os.path.join(logdir, sc.name + ".clients.log"), "w", encoding="utf-8") as f:
        for r in results:
            f.write("$ %s\nrc=%d\n--stdout--\n%s\n--stderr--\n%s\n\n" % (" ".join(r.run.argv), r.rc, r.stdout[-3000:],
                                                                         r.stderr[-3000:]))
    conns = connections(pcap)
    wire = observe(pcap, sc.port)
    if len(conns) != len(sc.runs):
        raise RuntimeError("%s: %d client runs but %d connections in %s" % (sc.name, len(sc.runs), len(conns), pcap))
    rows = []
    for r, (ts, cli, srv) in zip(results, conns):
        succeeded = _client_succeeded(r)
        if succeeded != r.run.ok:
            log.warning("%s: %s expected %s but %s (rc=%d)\n%s\n%s", sc.name, r.run.stack,
                        "success" if r.run.ok else "failure", "succeeded" if succeeded else "failed", r.rc,
                        r.stdout[-800:], r.stderr[-800:])
        events = wire.get(cli, [])
        rows.append({
            "pcap": os.path.basename(pcap),
            "scenario": sc.name,
            "client": cli,
            "server": srv,
            "server_name": r.run.server_name,
            "expected_cause": r.run.cause,
            "expected_warning": r.run.warning,
            "direction": sc.direction,
            "rejected_by": r.run.rejected_by,
            "stacks": "%s -> %s" % (r.run.stack, sc.server_stack),
            "client_outcome": "success" if succeeded else "failure",
            "capture_time": _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "observed": " ".join(events),
            "notes": _wire_notes(r.run.notes, events),
            "client_error": _short_error(r) if not succeeded else None,
        })
    log.info("%-36s %d connection(s), %d bytes", sc.name, len(conns), os.path.getsize(pcap))
    return rows


def _wire_notes(notes: str, events: list[str]) -> str:
    """Append what the wire shows (alerts, who closed first) to the hand-written notes."""
    who = {"C": "client", "S": "server"}
    alerts = []
    for ev in events:
        side, _, what = ev.partition(":")
        if what.startswith("Alert("):
            level, _, desc = what[6:-1].partition(",")
            alerts.append("%s %s %s" % (who[side], level, desc))
        elif what == "EncryptedAlert":
            alerts.append("%s encrypted alert" % who[side])
    closes = [ev for ev in events if ev.endswith(":FIN") or ev.endswith(":RST")]
    wire = "On the wire: " + ("alerts: " + "; ".join(alerts) if alerts else "no readable alert")
    if closes:
        side, _, kind = closes[0].partition(":")
        wire += "; first %s from the %s" % (kind, who[side])
    return (notes.rstrip(". ") + ". " if notes else "") + wire + "."


def _client_succeeded(r: Result) -> bool:
    if r.rc != 0:
        return False
    argv0 = os.path.basename(r.run.argv[0])
    if argv0 == "openssl":
        return "HTTP/1.0 200" in r.stdout
    if argv0 == "curl":
        return "HTTP 200" in r.stdout
    return True


def _short_error(r: Result) -> str:
    lines = [ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines() if ln.strip()]
    keys = ("error", "alert", "fail", "Exception", "verify", "SSL", "exception")
    hits = [ln for ln in lines if any(k in ln for k in keys)]
    return " | ".join((hits or lines)[-3:])[:400]


def merge(pcaps: list[str], rows: list[dict], examples: str) -> None:
    os.makedirs(examples, exist_ok=True)
    target = os.path.join(examples, "gateway-failures.pcap")
    sh(["mergecap", "-F", "pcap", "-w", target] + pcaps)
    with open(os.path.join(examples, "gateway-failures.expected.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(dict(row, pcap="gateway-failures.pcap", source_pcap=row["pcap"]),
                               sort_keys=False) + "\n")
    log.info("merged %d pcaps into %s (%d bytes)", len(pcaps), target, os.path.getsize(target))



def write_expected(out: str, rows: list[dict], done: list[str], order: list[str],
                   only: bool) -> list[dict]:
    """Write ``out/expected.jsonl``; with ``only`` (some scenarios re-made) keep the other
    scenarios' lines, in scenario order.  Returns the lines written."""
    expected = os.path.join(out, "expected.jsonl")
    if only and os.path.exists(expected):
        with open(expected, encoding="utf-8") as f:
            old = [json.loads(line) for line in f if line.strip()]
        rows = sorted([r for r in old if r["scenario"] not in done] + rows,
                      key=lambda r: (order.index(r["scenario"]) if r["scenario"] in order else 999,
                                     r["capture_time"]))
    with open(expected, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    log.info("wrote %d expected lines to %s", len(rows), expected)
    return rows

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "data", "scenarios"))
    ap.add_argument("--examples", default=None, help="directory for the merged capture (skip when omitted)")
    ap.add_argument("--only", nargs="*", help="run only these scenarios (keeps the other expected lines; "
                                              "implies --reuse-pki)")
    ap.add_argument("--reuse-pki", action="store_true", help="keep the existing pki/ instead of a new one")
    ap.add_argument("--keep-logs", help="copy client/server/tcpdump logs to this directory")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--ns-prefix", default=NS_PREFIX,
                    help="namespace names PREFIX-client, -router, -mp, -backend (default %(default)s); "
                         "a run deletes its own namespaces at start")
    args = ap.parse_args(argv)
    set_ns_prefix(args.ns_prefix)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = os.path.abspath(args.out)
    pki_dir = os.path.join(out, "pki")
    if args.list:
        for sc in scenarios(Env(pki_dir, "/tmp")):
            print("%-38s %-10s port %d  %s" % (sc.name, sc.direction, sc.port, sc.description))
        return 0
    if os.geteuid() != 0:
        log.error("needs root (network namespaces, tcpdump)")
        return 2
    for tool in ("openssl", "curl", "java", "javac", "keytool", "tcpdump", "tshark", "mergecap", "ethtool", "ip"):
        if shutil.which(tool) is None:
            log.error("missing tool: %s", tool)
            return 2
    os.makedirs(out, exist_ok=True)
    reuse = args.reuse_pki or bool(args.only)
    if not reuse or not os.path.exists(os.path.join(pki_dir, "root.pem")):
        if os.path.isdir(pki_dir):
            shutil.rmtree(pki_dir)
        pki_mod.build(pki_dir)
    tmp = tempfile.mkdtemp(prefix="tlsdiag-scenarios-")
    rows: list[dict] = []
    try:
        env = Env(pki_dir, tmp)
        prepare(env)
        all_sc = scenarios(env)
        ports = [sc.port for sc in all_sc]
        assert len(ports) == len(set(ports)), "scenario ports must be distinct"
        todo = [sc for sc in all_sc if not args.only or sc.name in args.only]
        if args.only and len(todo) != len(set(args.only)):
            log.error("unknown scenario in --only; see --list")
            return 2
        setup()
        for sc in todo:
            rows += run_scenario(sc, env, out, tmp)
    finally:
        teardown()
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for name in os.listdir(tmp):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(tmp, name), args.keep_logs)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = write_expected(out, rows, [sc.name for sc in todo], [sc.name for sc in all_sc],
                          bool(args.only))
    if args.examples:
        pcaps = [os.path.join(out, sc.name + ".pcap") for sc in all_sc
                 if os.path.exists(os.path.join(out, sc.name + ".pcap"))]
        merge(pcaps, rows, os.path.abspath(args.examples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
