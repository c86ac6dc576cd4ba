"""A MySQL client whose SSLRequest and ClientHello leave in one TCP segment (one ``send``).

    python3 mysql_coalesced.py HOST PORT CAFILE SERVER_NAME [tls1.2]

What a sensor sees when a client does not wait between the two (MySQL's protocol has no reply
to the SSLRequest), when a retransmission carries both, or when receive offload merges them
before the capture point.  The TLS is Python's ssl (OpenSSL) through memory BIOs, so the
ClientHello can be sent with the request; the server is the real one.  Prints ``tls ok`` when
the handshake is done and the certificate verified, then sends close_notify and closes.
"""
from __future__ import annotations

import socket
import ssl
import struct
import sys

#: CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION |
#: CLIENT_PLUGIN_AUTH (MySQL client/server protocol, capability flags)
CAPABILITIES = 0x1 | 0x200 | 0x800 | 0x8000 | 0x80000


def read_packet(sock: socket.socket) -> bytes:
    head = _read(sock, 4)
    return _read(sock, int.from_bytes(head[:3], "little"))


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        more = sock.recv(n - len(out))
        if not more:
            raise SystemExit("server closed during the greeting")
        out += more
    return out


def main(host: str, port: int, cafile: str, name: str, tls12: bool) -> None:
    ctx = ssl.create_default_context(cafile=cafile)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with socket.create_connection((host, port), timeout=10) as sock:
        read_packet(sock)                                   # the server's greeting
        # SSLRequest: capabilities, max packet size, character set, 23 bytes of filler
        payload = struct.pack("<IIB23x", CAPABILITIES, 1 << 24, 33)
        request = len(payload).to_bytes(3, "little") + b"\x01" + payload
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(request + outgoing.read())             # one segment
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = outgoing.read()
                if out:
                    sock.sendall(out)
                data = sock.recv(65536)
                if not data:
                    raise SystemExit("server closed during the handshake")
                incoming.write(data)
        out = outgoing.read()
        if out:
            sock.sendall(out)
        print("tls ok", tls.version(), flush=True)
        try:
            tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        out = outgoing.read()
        if out:
            sock.sendall(out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:] == ["tls1.2"])
