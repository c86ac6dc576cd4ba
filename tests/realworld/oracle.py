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
    ja4          JA4 of that ClientHello, computed here from the bytes tshark shows for each
                 field (``-T json -x``) by the text of FoxIO's technical_details/JA4.md, with
                 nothing of tlsdiag's own JA4 code
    server_hello the number of ServerHello messages (a HelloRetryRequest counts)
    hrr          one of them was a HelloRetryRequest (its random is RFC 8446's constant)

Only tshark's output is used: this file does not import tlsdiag.  One gap of tshark 4.0 is
bridged with tshark itself: its MySQL dissector starts TLS at the frame after the SSLRequest, so a
ClientHello sent in the same segment as the request (starttls-mysql-coalesced) is not dissected.
There the request's own length (``mysql.packet_length``) says where the hello begins, and tshark
dissects those bytes as TLS in a one-packet capture (:func:`_hellos_behind_requests`).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import dpkt

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


# ---------------------------------------------------------------------------------------------
# JA4 from tshark's bytes, by the spec's text
# ---------------------------------------------------------------------------------------------

_GREASE = {0x0A0A + 0x1010 * i for i in range(16)}
_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
                 0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def _raws(v) -> list:
    """tshark's ``NAME_raw`` value(s) as a list of hex strings."""
    if v is None:
        return []
    if v and isinstance(v[0], list):
        return [x[0] for x in v]
    return [v[0]]


def _u16s(hexes) -> list:
    return [int(h[i:i + 4], 16) for h in hexes for i in range(0, len(h), 4)]


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4_from_tshark(hs: dict) -> str:
    """JA4 of a ClientHello from its tshark JSON (``tls.handshake`` with ``_raw`` values).
    JA4.md: GREASE ignored everywhere; version = highest of supported_versions, else the
    hello's version; d/i by the presence of extension 0; counts capped at 99; ALPN: first and
    last characters of the first value, or of its hex when the first or last byte is not
    alphanumeric; b = sorted suites; c = sorted extensions without 0000 and 0010, then "_" and
    the signature algorithms in wire order -- no "_" when there are none."""
    exts, sigs, versions, alpn = [], [], [], None
    for key, ext in hs.items():
        if not key.startswith("Extension: "):
            continue
        for e in (ext if isinstance(ext, list) else [ext]):
            etype = _u16s(_raws(e.get("tls.handshake.extension.type_raw")))[0]
            exts.append(etype)
            if etype == 13:
                sigs = _u16s(_raws(e.get("tls.handshake.sig_hash_algs_raw")))
            elif etype == 43:
                versions = _u16s(_raws(e.get("tls.handshake.extensions.supported_version_raw")))
            elif etype == 16:
                raw = bytes.fromhex(_raws(e.get("tls.handshake.extensions_alpn_list_raw"))[0])
                alpn = raw[1:1 + raw[0]] if raw else b""
    suites = [c for c in _u16s(_raws(hs.get("tls.handshake.ciphersuites", {})
                                     .get("tls.handshake.ciphersuite_raw")))
              if c not in _GREASE]
    exts = [e for e in exts if e not in _GREASE]
    versions = [v for v in versions if v not in _GREASE]
    version = max(versions) if versions else _u16s(_raws(hs["tls.handshake.version_raw"]))[0]
    if not alpn:
        a_alpn = "00"
    elif all(0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A
             for b in (alpn[0], alpn[-1])):
        a_alpn = chr(alpn[0]) + chr(alpn[-1])
    else:
        a_alpn = alpn.hex()[0] + alpn.hex()[-1]
    a = "t%s%s%02d%02d%s" % (_JA4_VERSIONS.get(version, "00"), "d" if 0 in exts else "i",
                             min(len(suites), 99), min(len(exts), 99), a_alpn)
    b = _sha12(",".join("%04x" % c for c in sorted(suites)))
    ext_list = ",".join("%04x" % e for e in sorted(exts) if e not in (0, 16))
    sig_list = ",".join("%04x" % x for x in sigs if x not in _GREASE)
    c = _sha12(ext_list + ("_" + sig_list if sig_list else "")) if ext_list else "000000000000"
    return "%s_%s_%s" % (a, b, c)


def _client_hellos(path: Path, *decode: str):
    """(tcp.stream, tls.handshake dict) of every ClientHello, in frame order."""
    out = subprocess.run(["tshark", "-r", str(path), "-n", "-Y", "tls.handshake.type == 1",
                          "-T", "json", "--no-duplicate-keys", "-x", *decode],
                         capture_output=True, text=True, check=True).stdout
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        tcp = layers["tcp"][-1] if isinstance(layers["tcp"], list) else layers["tcp"]
        stack = [layers["tls"]]
        while stack:
            o = stack.pop()
            if isinstance(o, list):
                stack.extend(reversed(o))
            elif isinstance(o, dict):
                if o.get("tls.handshake.type") == "1":
                    yield int(tcp["tcp.stream"]), o
                else:
                    stack.extend(v for v in o.values() if isinstance(v, (dict, list)))


def _hellos_behind_requests(path: Path):
    """(tcp.stream, tls.handshake dict) of each ClientHello that follows a MySQL SSLRequest
    in the same segment: the bytes after the request (4 + ``mysql.packet_length``), dissected
    by tshark as TLS in a capture of one packet."""
    rows = subprocess.run(["tshark", "-r", str(path), "-n", "-Y", "mysql", "-T", "fields",
                           "-e", "tcp.stream", "-e", "mysql.packet_length", "-e", "tcp.len",
                           "-e", "tcp.payload", "-e", "tcp.srcport", "-e", "tcp.dstport"],
                          capture_output=True, text=True, check=True).stdout
    for line in rows.splitlines():
        stream, length, tcp_len, payload, sport, dport = line.split("\t")
        request = 4 + int(length.split(",")[0])
        if not payload or int(tcp_len) <= request:
            continue
        tail = bytes.fromhex(payload.replace(":", ""))[request:]
        seg = dpkt.tcp.TCP(sport=int(sport), dport=int(dport), seq=1, flags=dpkt.tcp.TH_ACK,
                           data=tail)
        ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02",
                        p=dpkt.ip.IP_PROTO_TCP, data=seg)
        ip.len = len(bytes(ip))
        with tempfile.NamedTemporaryFile(suffix=".pcap") as one:
            w = dpkt.pcap.Writer(one, linktype=dpkt.pcap.DLT_RAW)
            w.writepkt(bytes(ip), ts=0.0)
            one.flush()
            for _stream, hs in _client_hellos(Path(one.name), "-d",
                                              "tcp.port==%s,tls" % dport):
                yield int(stream), hs


def _server_name(hs: dict) -> str | None:
    """The SNI host_name in a tls.handshake dict, or None."""
    stack = [hs]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if "tls.handshake.extensions_server_name" in o:
                return o["tls.handshake.extensions_server_name"]
            stack.extend(v for v in o.values() if isinstance(v, (dict, list)))
        elif isinstance(o, list):
            stack.extend(o)
    return None


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
    for stream, hs in _client_hellos(path):
        c = conns.get(stream)
        if c is not None and "ja4" not in c:
            c["ja4"] = ja4_from_tshark(hs) if "tls.handshake.ciphersuites" in hs else None
    for stream, hs in _hellos_behind_requests(path):
        c = conns.get(stream)
        if c is not None and not c["client_hello"]:
            c["client_hello"] = True
            c["server_name"] = _server_name(hs)
            c["ja4"] = ja4_from_tshark(hs) if "tls.handshake.ciphersuites" in hs else None
    out = []
    for c in sorted(conns.values(), key=lambda c: c["stream"]):
        c.setdefault("ja4", None)
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
