"""``tlsdiag probe HOST:PORT``: command-line front end of :mod:`analyzer.probe`.

The application layer: it hands the probe the wire core's parsers (the implementation ``cext.wire``
selected), which the analyzer package may not import itself.

Exit status: 0 the probe ran and found no failure, 1 its verdict holds a FAILURE (the server would fail some
client: a refused version or suite, a required name or certificate, a bad chain, not TLS at all), 2 usage error
or target unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import sys
from typing import Sequence, TextIO

from analyzer.probe import ProbeError, ProbeOptions, Prober, WireParsers, load_client_cert, parse_ciphers, \
    parse_target, parse_versions, render_text, suite_table
from cext import wire
from cext.errors import ProtocolError
from tlsdiag.commands import common
from tlsdiag.status import ExitStatus

log = logging.getLogger(__name__)

#: the wire core's ServerHello / Certificate parsers, as the sensor uses them
WIRE = WireParsers(wire.parse_server_hello, wire.parse_certificate, ProtocolError, wire.MAX_RECORD)


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(
        "probe", "Actively probe one TLS server you name: accepted protocol versions and cipher "
                 "suites, whether a given client offer is accepted (and the alert if not), SNI "
                 "sensitivity, and the certificate chain it serves, validated.",
        with_settings=False)
    p.add_argument("target", metavar="HOST:PORT", help="server to probe (IPv6 as [addr]:port)")
    p.add_argument("--servername", metavar="NAME",
                   help="server name to send as SNI and to check the certificate against "
                        "(default: HOST when it is a name)")
    p.add_argument("--truststore", metavar="PEM",
                   help="PEM bundle or directory of trusted roots (default: this host's system bundle)")
    p.add_argument("--versions", action="append", metavar="V[,V...]",
                   help="client offer to test: protocol versions, e.g. TLSv1.2 or TLSv1.2,TLSv1.3 (repeatable)")
    p.add_argument("--ciphers", action="append", metavar="SUITE[,SUITE...]",
                   help="client offer to test: cipher suites, IANA or OpenSSL names, comma or colon separated "
                        "(repeatable); e.g. the Message Processor's SSLInfo <Ciphers>")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="timeout of every connection attempt, seconds (default 5)")
    p.add_argument("--client-cert", metavar="PEM",
                   help="client certificate (then its intermediates) to present when the server asks for one")
    p.add_argument("--client-key", metavar="PEM", help="private key of --client-cert (if not inside it)")
    p.add_argument("--no-suites", action="store_true",
                   help="skip the per-version cipher-suite enumeration (fewer connections)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format (default text)")
    return p


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    started = common.start("probe", build_parser(), argv, err)
    if isinstance(started, int):
        return started
    args, _ = started

    try:
        if not (0 < args.timeout <= 300):
            raise ProbeError("--timeout must be between 0 and 300 seconds")
        host, port = parse_target(args.target)
        versions = parse_versions(args.versions) if args.versions else None
        if args.ciphers:
            parse_ciphers(args.ciphers, suite_table())  # validate before touching the network
        if args.client_key and not args.client_cert:
            raise ProbeError("--client-key needs --client-cert")
        if args.client_cert:
            load_client_cert(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), args.client_cert, args.client_key)
        opts = ProbeOptions(host=host, port=port, servername=args.servername, truststore=args.truststore,
                            offer_versions=versions, offer_ciphers=args.ciphers, timeout=args.timeout,
                            enumerate_suites=not args.no_suites, client_cert=args.client_cert,
                            client_key=args.client_key)
        report = Prober(opts, WIRE).run()
    except ProbeError as e:
        print(f"tlsdiag probe: error: {e}", file=err)
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        print("tlsdiag probe: interrupted", file=err)
        return ExitStatus.ERROR_CTRL_C

    if args.format == "json":
        out.write(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    else:
        out.write(render_text(report))
    found = report.get("findings")
    failed = isinstance(found, list) and any(isinstance(f, dict) and f.get("severity") == "failure" for f in found)
    return ExitStatus.FAILURES if failed else ExitStatus.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
