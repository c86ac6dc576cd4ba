"""Active TLS probe: the vendor page's manual ``openssl s_client`` steps, automated.

Only ever connects to the one target the user names.  For that target it finds out

* which protocol versions the server accepts, each offered alone (SSLv3 .. TLSv1.3);
* which cipher suites it accepts per version (server preference order when it has one; TLS 1.3 suites
  with hand-built ClientHellos, since Python's ``ssl`` cannot restrict them);
* whether it asks for a client certificate and what it does without one (or with ``--client-cert``);
* whether a given client offer (versions + suites, e.g. the Message Processor's) is accepted, and the
  alert the server answered with when it is not;
* SNI sensitivity: the handshake with the name, without ``server_name``, and with a name the server
  cannot know (failure, a different certificate, or an ``unrecognized_name`` alert);
* the certificate chain exactly as sent on the connection (TLS 1.3 too), validated: expiry at now,
  hostname against the server name, completeness from what was sent, trust against a truststore.

How: Python's ``ssl`` module with one fresh context per attempt and OpenSSL's message callback
(``SSLContext._msg_callback``), which hands us every handshake message and alert in plaintext (the
TLS 1.3 ``Certificate`` included), so alerts are read from the wire with their real code and level
rather than guessed from error strings (the OpenSSL error reason is the fallback).  The server's
ServerHello and Certificate are read with the wire core's parsers, the sensor's own, which the
application hands in (:class:`WireParsers`: the analyzer does not import ``cext``).  Versions the local
OpenSSL cannot offer at all (SSLv3 on a modern build), TLS 1.3 suite enumeration and exact TLS 1.3
offers use a hand-built ClientHello: the server's ServerHello (or alert) says what it accepts, without
completing the handshake.  When the message callback is not available, the chain comes from
``openssl s_client -showcerts`` instead.

"Negotiated" (the ServerHello picked an offered version) is kept apart from "accepted" (the handshake
completed): a server that requires a client certificate negotiates every version it supports and then
fails them all, which is ``client_certificate_missing``, not a protocol mismatch.

Verdicts name causes from :mod:`analyzer.causes` and take their fixes from :mod:`analyzer.remediation`;
chain validation is :class:`analyzer.certs.CertChecker`, the diagnosis engine's own, so a served chain is
judged exactly like a captured one.  Every connection attempt (and the name lookup) has a timeout; the
number of attempts is bounded.

Modules: :mod:`.suites` (OpenSSL <-> IANA suite names), :mod:`.hello` (the ClientHello builder, the
injected parsers), :mod:`.attempt` (one handshake or hand-built hello), :mod:`.chain` (chain fetch and
validation), :mod:`.findings` (verdicts), :mod:`.prober` (the run), :mod:`.render` (text).
"""
from __future__ import annotations

from .attempt import VERSIONS, Attempt, ProbeError, alert_from_reason, alert_name, handshake, load_client_cert, \
    raw_hello_probe
from .chain import chain_via_openssl, load_roots, validate_chain
from .findings import findings
from .hello import MAX_CHAIN_CERTS, ServerHelloInfo, WireParsers, build_client_hello, read_certificates, \
    read_server_hello
from .prober import ProbeOptions, Prober, parse_ciphers, parse_target, parse_versions
from .render import render_text
from .suites import Suite, SuiteTable, suite_table

__all__ = [
    "Attempt", "MAX_CHAIN_CERTS", "ProbeError", "ProbeOptions", "Prober", "ServerHelloInfo", "Suite", "SuiteTable",
    "VERSIONS", "WireParsers", "alert_from_reason", "alert_name", "build_client_hello", "chain_via_openssl",
    "findings", "handshake", "load_client_cert", "load_roots", "parse_ciphers", "parse_target", "parse_versions",
    "raw_hello_probe", "read_certificates", "read_server_hello", "render_text", "suite_table", "validate_chain",
]
