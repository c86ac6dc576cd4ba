"""The independent oracle for tests/data/realworld/: tshark's dissection of each capture, reduced
to per-connection facts, written beside it as NAME.tshark.jsonl (issue 15).

    python3 tests/realworld/oracle.py [NAME.pcap ...]       # default: every capture there

tshark decodes every encapsulation and STARTTLS protocol of these captures by itself (VXLAN,
GENEVE, GRE, ERSPAN, IP-in-IP, MPLS, PPPoE, GTP-U, CAPWAP; SMTP, IMAP, POP3, FTP, LDAP, XMPP,
PostgreSQL, MySQL on their standard ports), so it runs without -d.  One JSON object per TCP
connection (tshark's tcp.stream) that carried a TLS handshake message:

    stream       tshark's stream number
    client       "ip:port" of the SYN sender (else of the ClientHello sender), IPv6 "[a]:p";
                 the innermost IP header of the frame (the tunnelled connection)
    server       the other end
    server_name  the ClientHello's SNI host_name, or null
    version      "0x0303"...: the server's selected version (supported_versions, else the
                 ServerHello version), null without a ServerHello
    cipher       "0xc02f"...: the ServerHello's cipher suite, null without one
    certificates the number of certificates in the server's plaintext Certificate messages
    alerts       [[from, level, description], ...] plaintext alerts tshark decoded (numbers)
    client_hello the ClientHello was seen
    server_hello the number of ServerHello messages (a HelloRetryRequest counts)
    hrr          one of them was a HelloRetryRequest (its random is RFC 8446's constant)

Only tshark's output is used: this file does not import tlsdiag.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "realworld"

FIELDS = ("frame.number", "frame.protocols", "tcp.stream", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack",
          "tls.handshake.type", "tls.handshake.extensions_server_name",
          "tls.handshake.ciphersuite", "tls.handshake.extensions.supported_version",
          "tls.handshake.version", "tls.handshake.certificate_length", "tls.alert_message.level",
          "tls.alert_message.desc", "tls.handshake.random")

#: RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest
HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"


def tshark_version() -> str:
    return subprocess.run(["tshark", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]


def _rows(path: Path):
    argv = ["tshark", "-r", str(path), "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=\t",
            "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cols = line.split("\t")
        yield {f: (cols[i].split("|") if i < len(cols) and cols[i] != "" else [])
               for i, f in enumerate(FIELDS)}


def _endpoint(row) -> tuple:
    """(src, dst) of the innermost IP header: the last ip/ipv6 in frame.protocols."""
    protos = row["frame.protocols"][0].split(":")
    inner = [p for p in protos if p in ("ip", "ipv6")][-1]
    src = row[inner + ".src"][-1]
    dst = row[inner + ".dst"][-1]
    sport, dport = row["tcp.srcport"][-1], row["tcp.dstport"][-1]
    fmt = (lambda a, p: "[%s]:%s" % (a, p)) if inner == "ipv6" else (lambda a, p: "%s:%s" % (a, p))
    return fmt(src, sport), fmt(dst, dport)


def facts(path: Path) -> list[dict]:
    conns: dict = {}
    for row in _rows(path):
        stream = int(row["tcp.stream"][-1])
        src, dst = _endpoint(row)
        c = conns.setdefault(stream, {"stream": stream, "client": None, "server": None,
                                      "server_name": None, "version": None, "cipher": None,
                                      "certificates": 0, "alerts": [], "client_hello": False,
                                      "server_hello": 0, "hrr": False, "_first": (src, dst)})
        syn = row["tcp.flags.syn"][-1] in ("1", "True")
        ack = row["tcp.flags.ack"][-1] in ("1", "True")
        if syn and not ack and c["client"] is None:
            c["client"], c["server"] = src, dst
        types = row["tls.handshake.type"]
        if "1" in types and c["client"] is None:
            c["client"], c["server"] = src, dst
        from_client = c["client"] is not None and src == c["client"]
        if "1" in types and from_client and not c["client_hello"]:
            c["client_hello"] = True
            if row["tls.handshake.extensions_server_name"]:
                c["server_name"] = row["tls.handshake.extensions_server_name"][0]
        if "2" in types and not from_client:
            c["server_hello"] += types.count("2")
            if any(r.replace(":", "") == HRR_RANDOM for r in row["tls.handshake.random"]):
                c["hrr"] = True
            c["cipher"] = row["tls.handshake.ciphersuite"][-1]
            sv = row["tls.handshake.extensions.supported_version"]
            c["version"] = sv[-1] if sv else row["tls.handshake.version"][types.index("2")]
        if "11" in types and not from_client:
            c["certificates"] += len(row["tls.handshake.certificate_length"])
        for level, desc in zip(row["tls.alert_message.level"], row["tls.alert_message.desc"]):
            c["alerts"].append(["client" if from_client else "server", int(level), int(desc)])
    out = []
    for c in sorted(conns.values(), key=lambda c: c["stream"]):
        if c["client"] is None:
            c["client"], c["server"] = c["_first"]
        del c["_first"]
        if c["client_hello"] or c["server_hello"]:
            out.append(c)
    return out


def main(argv) -> None:
    """Write NAME.tshark.jsonl for each capture and note, in CAPTURES.json, the SHA-256 of the
    capture it was made from and the tshark that made it (the test checks the former)."""
    paths = [Path(a) for a in argv] or sorted(DATA.glob("*.pcap"))
    manifest_path = DATA / "CAPTURES.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    version = tshark_version()
    for path in paths:
        rows = facts(path)
        target = path.with_name(path.stem + ".tshark.jsonl")
        target.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        entry = manifest.setdefault(path.stem, {})
        entry["pcap_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["oracle"] = version
        print("%s: %d connections" % (target.name, len(rows)))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(version)


if __name__ == "__main__":
    main(sys.argv[1:])
