"""Small socket programs for the captures of issue 15 items 3 and 4 (run inside a namespace).

    clients.py rst HOST PORT        a real ClientHello (OpenSSL's, TLS 1.2 at most), then RST
    clients.py fin HOST PORT        the same, then FIN (half-close), read what comes, close
    clients.py malformed HOST PORT  a real ClientHello with its cipher_suites length corrupted
    clients.py silent HOST PORT     a TCP server that reads and never answers

The ClientHello is OpenSSL's own (Python's ssl module over a memory BIO), so only the abort
and the corruption are made here.
"""
from __future__ import annotations

import socket
import ssl
import struct
import sys
import time


def real_client_hello(max_tls12: bool = True) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="rw.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "silent":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(8)
        print("ready", flush=True)
        while True:
            c, _ = srv.accept()
            c.settimeout(10)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
            c.close()
    hello = real_client_hello()
    s = connect(host, port)
    if mode == "malformed":
        # record header (5) + handshake header (4) + version (2) + random (32) + session id
        pos = 5 + 4 + 2 + 32
        pos += 1 + hello[pos]
        bad = hello[:pos] + struct.pack("!H", 0xFFF0) + hello[pos + 2:]
        s.sendall(bad)
        time.sleep(1.0)
        s.close()
        return
    s.sendall(hello)
    # the server's answer is held back by a slow link on its side: on its way, not here yet
    time.sleep(0.1)
    if mode == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        return
    if mode == "fin":
        s.shutdown(socket.SHUT_WR)
        got = 0
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += len(b)
        except OSError:
            pass
        print("got %d bytes after our FIN" % got)
        s.close()
        return
    raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main()
