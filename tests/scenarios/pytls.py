"""Tiny Python ``ssl`` TLS client and server used by the scenario generator.

server: answers one HTTP request per connection; ``--require-sni`` makes it refuse ClientHellos
        without server_name with a fatal handshake_failure alert (via ``sni_callback``), like an
        SNI-only virtual-host server.
client: connects by IP, optionally sends SNI, verifies (or not) and sends ``GET /``;
        ``--check-hostname-after`` completes the handshake without verification, then checks the
        certificate's names itself and closes without sending data when they do not match
        (the "complete handshake then immediate close" pattern).

Exit status of the client: 0 = response received, 1 = TLS/connection failure, 3 = closed after
its own post-handshake hostname check failed.
"""
from __future__ import annotations

import argparse
import logging
import socket
import ssl
import sys

log = logging.getLogger("pytls")

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _versions(ctx: ssl.SSLContext, args: argparse.Namespace) -> None:
    if args.min_version:
        ctx.minimum_version = VERSIONS[args.min_version]
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)


def serve(args: argparse.Namespace) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    _versions(ctx, args)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if args.require_sni:
        def on_sni(sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> int | None:
            if name is None:
                log.info("ClientHello without server_name: refusing")
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            return None
        ctx.sni_callback = on_sni
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(16)
    log.info("listening on %s:%d", args.bind, args.port)
    while True:
        conn, peer = lsock.accept()
        conn.settimeout(10)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 8192:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    body = b"hello from pytls\n"
                    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                                b"Connection: close\r\n\r\n%s" % (len(body), body))
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError):
                    pass
        except (ssl.SSLError, OSError) as exc:
            log.info("connection from %s failed: %s", peer, exc)
        finally:
            conn.close()


def client(args: argparse.Namespace) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _versions(ctx, args)
    if args.no_verify or args.check_hostname_after:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(args.cafile)
        ctx.check_hostname = bool(args.servername) and not args.no_sni
        ctx.verify_mode = ssl.CERT_REQUIRED
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    sni = None if args.no_sni else args.servername
    raw = socket.create_connection((args.host, args.port), timeout=10)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=sni)
    except (ssl.SSLError, OSError) as exc:
        print("pytls client: handshake failed: %s" % exc, file=sys.stderr)
        raw.close()
        return 1
    if args.check_hostname_after:
        from cryptography import x509
        der = tls.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
                .get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        if args.servername not in names:
            print("pytls client: handshake done but certificate names %s do not include %s: closing"
                  % (names, args.servername), file=sys.stderr)
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
            tls.close()
            return 3
    version, cipher = tls.version(), tls.cipher()
    try:
        tls.sendall(b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % (args.servername or args.host).encode())
        resp = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            resp += chunk
    except (ssl.SSLError, OSError) as exc:
        print("pytls client: failed after handshake: %s" % exc, file=sys.stderr)
        tls.close()
        return 1
    tls.close()
    print("pytls client: %s %s, sni=%s, %d bytes" % (version, cipher and cipher[0], sni, len(resp)))
    return 0 if resp.startswith(b"HTTP/") else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert", required=True, help="PEM chain (leaf first)")
    s.add_argument("--key", required=True)
    s.add_argument("--client-ca", help="require a client certificate issued under this CA")
    s.add_argument("--require-sni", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--servername")
    c.add_argument("--no-sni", action="store_true")
    c.add_argument("--cafile")
    c.add_argument("--no-verify", action="store_true")
    c.add_argument("--check-hostname-after", action="store_true")
    c.add_argument("--cert")
    c.add_argument("--key")
    for sp in (s, c):
        sp.add_argument("--min-version", choices=sorted(VERSIONS))
        sp.add_argument("--max-version", choices=sorted(VERSIONS))
        sp.add_argument("--ciphers")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="pytls %(levelname)s %(message)s")
    return serve(args) if args.cmd == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
