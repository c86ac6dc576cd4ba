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

Options for the TLS 1.3 scenarios (tests/scenarios/generate_tls13.py):

server: ``--threaded`` handles connections concurrently; a request for ``/busy`` is answered with
        ``503 Service Unavailable`` (an HTTP error over a good TLS connection).
client: ``--source-port`` binds the client's port (so the generator can find the connection in the
        capture), ``--path`` the request path, ``--mode handshake`` completes the handshake and closes
        (close_notify) without a request, ``--mode tcp`` connects and closes without TLS (health checks).
        ``--script`` reads one connection per stdin line (``key=value`` words overriding the options:
        host, port, servername, no_sni, cert, key, min_version, max_version, source_port, path, mode,
        save=NAME keeps the session, resume=NAME offers a kept one) and prints one ``RESULT {json}``
        line per connection, so one process can keep TLS sessions across server restarts.
"""
from __future__ import annotations

import argparse
import logging
import socket
import ssl
import sys
import threading
import json
import time

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
    if args.groups:
        ctx.set_ecdh_curve(args.groups)
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
        if args.threaded:
            threading.Thread(target=_serve_one, args=(ctx, conn, peer), daemon=True).start()
        else:
            _serve_one(ctx, conn, peer)


def _serve_one(ctx: ssl.SSLContext, conn: socket.socket, peer: tuple) -> None:
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data:
                if data.startswith(b"GET /busy "):
                    status, body = b"503 Service Unavailable", b"busy\n"
                else:
                    status, body = b"200 OK", b"hello from pytls\n"
                tls.sendall(b"HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (status, len(body), body))
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
    except (ssl.SSLError, OSError) as exc:
        log.info("connection from %s failed: %s", peer, exc)
    finally:
        conn.close()


def _client_ctx(args: argparse.Namespace) -> ssl.SSLContext:
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
    return ctx


def client(args: argparse.Namespace) -> int:
    if args.script:
        return script(args)
    rc, _res, _session = connect(_client_ctx(args), args)
    return rc


def connect(ctx: ssl.SSLContext, args: argparse.Namespace, session: ssl.SSLSession | None = None
            ) -> tuple[int, dict, ssl.SSLSession | None]:
    """One connection; (exit status, result for --script, the TLS session after the response)."""
    res: dict = {"ok": False, "status": None, "version": None, "cipher": None, "resumed": False,
                 "sport": None, "error": None, "mode": args.mode}
    source = ("", args.source_port) if args.source_port else None
    try:
        raw = socket.create_connection((args.host, args.port), timeout=10, source_address=source)
    except OSError as exc:
        res["error"] = "connect: %s" % exc
        print("pytls client: connect failed: %s" % exc, file=sys.stderr)
        return 1, res, None
    res["sport"] = raw.getsockname()[1]
    if args.mode in ("tcp", "tcp_rst"):
        if args.mode == "tcp_rst":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
        res["ok"] = True
        return 0, res, None
    sni = None if args.no_sni else args.servername
    try:
        tls = ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except (ssl.SSLError, OSError) as exc:
        print("pytls client: handshake failed: %s" % exc, file=sys.stderr)
        res["error"] = "handshake: %s" % exc
        raw.close()
        return 1, res, None
    res["version"], res["resumed"] = tls.version(), tls.session_reused
    res["cipher"] = tls.cipher() and tls.cipher()[0]
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
            res["error"] = "hostname check after the handshake"
            return 3, res, None
    if args.mode == "handshake":
        # a TLS health check: handshake, close_notify, close; no request
        try:
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass
        tls.close()
        res["ok"] = True
        return 0, res, None
    version, cipher = tls.version(), tls.cipher()
    try:
        tls.sendall(b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (args.path.encode(),
                                                               (args.servername or args.host).encode()))
        resp = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            resp += chunk
    except (ssl.SSLError, OSError) as exc:
        print("pytls client: failed after handshake: %s" % exc, file=sys.stderr)
        res["error"] = "after handshake: %s" % exc
        tls.close()
        return 1, res, None
    kept = tls.session
    tls.close()
    print("pytls client: %s %s, sni=%s, %d bytes" % (version, cipher and cipher[0], sni, len(resp)))
    if resp.startswith(b"HTTP/"):
        res["ok"] = True
        res["status"] = int(resp.split(b" ", 2)[1])
        return 0, res, kept
    res["error"] = "no HTTP response"
    return 1, res, kept


BOOL_KEYS = ("no_sni", "no_verify", "check_hostname_after")


def script(args: argparse.Namespace) -> int:
    """One connection per stdin line of key=value words; sessions kept by name across lines."""
    contexts: dict[tuple, ssl.SSLContext] = {}
    sessions: dict[str, ssl.SSLSession] = {}
    for line in sys.stdin:
        words = dict(w.split("=", 1) for w in line.split())
        if not words:
            continue
        opts = argparse.Namespace(**vars(args))
        for k, v in words.items():
            if k in ("save", "resume"):
                continue
            if not hasattr(opts, k):
                raise SystemExit("pytls client: unknown script key %r" % k)
            setattr(opts, k, int(v) if k in ("port", "source_port") else v == "1" if k in BOOL_KEYS else v)
        key = (opts.cafile, opts.no_verify, opts.servername, opts.no_sni, opts.cert, opts.key,
               opts.min_version, opts.max_version, opts.ciphers)
        if key not in contexts:
            contexts[key] = _client_ctx(opts)
        offered = sessions.get(words["resume"]) if "resume" in words else None
        t0 = time.time()
        try:
            _rc, res, kept = connect(contexts[key], opts, offered)
        except ValueError as exc:       # e.g. a session of another context
            res, kept = {"ok": False, "error": "client: %s" % exc}, None
        res["offered_session"] = offered is not None
        res["t"] = t0
        if "save" in words and kept is not None:
            sessions[words["save"]] = kept
        print("RESULT " + json.dumps(res), flush=True)
    return 0


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
    s.add_argument("--threaded", action="store_true", help="one thread per connection")
    s.add_argument("--groups", help="the only key-exchange group (e.g. secp384r1): HelloRetryRequest "
                                    "for clients whose key_share has another")
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
    c.add_argument("--source-port", type=int, default=0)
    c.add_argument("--path", default="/")
    c.add_argument("--mode", choices=("http", "handshake", "tcp", "tcp_rst"), default="http")
    c.add_argument("--script", action="store_true", help="one connection per stdin line (see above)")
    for sp in (s, c):
        sp.add_argument("--min-version", choices=sorted(VERSIONS))
        sp.add_argument("--max-version", choices=sorted(VERSIONS))
        sp.add_argument("--ciphers")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="pytls %(levelname)s %(message)s")
    return serve(args) if args.cmd == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
