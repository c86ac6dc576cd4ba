"""``tlsdiag probe`` against real local TLS servers (openssl s_server and Python ssl) on 127.0.0.1.

Every server is a real TLS stack on a free loopback port, started per test and stopped afterwards; the
PKI (root, intermediate, leaves: good, expired, other name) is generated per session with cryptography.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from analyzer import probe
from cext import _wire_py
from cext.errors import ProtocolError
from tlsdiag.commands.probe import main
from tests.support.ports import free_port
from tests.support.pki import Issued, issue

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")

#: the probe's view of the wire core: the pure-Python twin's parsers (the command uses the selected build's)
WIRE = probe.WireParsers(_wire_py.parse_server_hello, _wire_py.parse_certificate, ProtocolError,
                         _wire_py.MAX_RECORD)
NAME = "probe.test"
OTHER = "default.test"
UTC = dt.timezone.utc


# ------------------------------------------------------------------------------------------ throwaway PKI

class PKI:
    """The probe tests' certificates as PEM files (tests/support/pki.py, RSA keys, valid around now)."""

    def __init__(self, d: Path) -> None:
        now = dt.datetime.now(UTC)
        day = dt.timedelta(days=1)
        self.d = d

        def cert(cn: str, issuer: Issued | None, *, ca: bool = False, names: tuple[str, ...] = (),
                 not_before: dt.datetime, not_after: dt.datetime, client: bool = False) -> Issued:
            return issue(cn, issuer, ca=ca, sans=names, not_before=not_before, not_after=not_after, client=client,
                         key_type="rsa", org=None)

        root = cert("tlsdiag Test Root", None, ca=True, not_before=now - 10 * day, not_after=now + 3650 * day)
        inter = cert("tlsdiag Test Intermediate", root, ca=True, not_before=now - 10 * day, not_after=now + 1000 * day)
        leaf = cert(NAME, inter, names=(NAME,), not_before=now - day, not_after=now + 365 * day)
        expired = cert(NAME, inter, names=(NAME,), not_before=now - 400 * day, not_after=now - 5 * day)
        other = cert(OTHER, inter, names=(OTHER,), not_before=now - day, not_after=now + 365 * day)
        client = cert("mp-client", inter, names=("mp-client.test",), not_before=now - day,
                      not_after=now + 365 * day, client=True)
        client_exp = cert("mp-client", inter, names=("mp-client.test",), not_before=now - 400 * day,
                          not_after=now - 3 * day, client=True)
        client_self = cert("mp-client", None, names=("mp-client.test",), not_before=now - day,
                           not_after=now + 365 * day, client=True)
        files = {
            "root.pem": root.pem, "inter.pem": inter.pem,
            "leaf.pem": leaf.pem, "leaf.key": leaf.key_pem, "leaf_chain.pem": leaf.pem + inter.pem,
            "expired.pem": expired.pem, "expired.key": expired.key_pem, "expired_chain.pem": expired.pem + inter.pem,
            "other.pem": other.pem, "other.key": other.key_pem, "other_chain.pem": other.pem + inter.pem,
            "client_chain.pem": client.pem + inter.pem, "client.key": client.key_pem,
            "client_expired_chain.pem": client_exp.pem + inter.pem, "client_expired.key": client_exp.key_pem,
            "client_self.pem": client_self.pem, "client_self.key": client_self.key_pem,
        }
        for n, data in files.items():
            (d / n).write_bytes(data)

    def __getattr__(self, item: str) -> str:
        p = self.d / item.replace("_key", ".key").replace("_pem", ".pem")
        if not p.exists():
            raise AttributeError(item)
        return str(p)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


# ------------------------------------------------------------------------------------------ servers

class OpenSSLServer:
    """``openssl s_server -www`` (with -www it answers HTTP and does not read stdin)."""

    def __init__(self, tmp: Path, *args: str, host: str = "127.0.0.1") -> None:
        self.port = free_port(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.host = f"[{host}]" if ":" in host else host
        self.log = tmp / f"s_server_{self.port}.log"
        self.cmd = ["openssl", "s_server", "-www", "-accept", f"{self.host}:{self.port}", *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OpenSSLServer:
        f = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        f.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b"ACCEPT" in self.log.read_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"s_server did not start: {self.log.read_text(errors='replace')}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class PySNIServer:
    """A Python ``ssl`` server whose sni_callback decides, like an SNI-only virtual-host front end.

    ``missing``: what to do without server_name: "reject" (fatal handshake_failure) or "default" (serve the
    default certificate); unknown names get a fatal unrecognized_name when ``reject_unknown``.
    """

    def __init__(self, pki: PKI, *, missing: str, reject_unknown: bool) -> None:
        self.named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.named.load_cert_chain(pki.leaf_chain_pem, pki.leaf_key)
        self.default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.default.load_cert_chain(pki.other_chain_pem, pki.other_key)
        self.missing, self.reject_unknown = missing, reject_unknown
        self.default.sni_callback = self._sni
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        self.handshakes: list[str | None] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _sni(self, obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        if name is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE if self.missing == "reject" else None
        if name == NAME:
            obj.context = self.named
            return None
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if self.reject_unknown else None

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(2)
            try:
                tls = self.default.wrap_socket(conn, server_side=True)
                self.handshakes.append(tls.server_hostname)
                tls.close()
            except (ssl.SSLError, OSError):
                conn.close()

    def __enter__(self) -> PySNIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def run_probe(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return int(rc), out.getvalue(), err.getvalue()


def run_json(*argv: str) -> dict:
    extra = [] if "--timeout" in argv else ["--timeout", "3"]
    rc, out, err = run_probe(*argv, "--format", "json", *extra)
    assert "Traceback" not in err
    report = json.loads(out)
    # the exit status is the verdict: 1 with a FAILURE finding, 0 without
    assert rc == (1 if any(f["severity"] == "failure" for f in report["findings"]) else 0), err
    return report


def causes(report: dict, severity: str = "failure") -> set[str]:
    return {f["cause"] for f in report["findings"] if f["severity"] == severity}


def accepted_versions(report: dict) -> list[str]:
    return [v for v, a in report["versions"].items() if a["accepted"]]


# ------------------------------------------------------------------------------------------ the servers' kinds

def test_tls10_only_server(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1", "-cipher", "DEFAULT@SECLEVEL=0") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem,
                     "--versions", "TLSv1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384")
    assert accepted_versions(r) == ["TLSv1.0"]
    assert r["versions"]["TLSv1.0"]["version"] == "TLSv1.0"
    # SSLv3 cannot be offered by OpenSSL 3: tested with the hand-built ClientHello, and refused by the server.
    assert r["versions"]["SSLv3"]["method"] in ("raw-client-hello", "python-ssl")
    assert r["versions"]["SSLv3"]["outcome"] in ("server_alert", "closed", "server_chose_other")
    # A TLS1.2-only offer: the server answers TLSv1.0 and the client aborts, or the server alerts.
    v12 = r["versions"]["TLSv1.2"]
    assert not v12["accepted"]
    assert v12["outcome"] in ("server_chose_other", "server_alert")
    if v12["outcome"] == "server_chose_other":
        assert v12["server_version"] == "TLSv1.0"
        assert v12["alert"] == {"code": 70, "name": "protocol_version", "level": "fatal", "sent_by": "client"}
    assert r["suites"]["TLSv1.0"], "suites of the accepted version enumerated"
    assert all("GCM" not in s for s in r["suites"]["TLSv1.0"])
    offer = r["offer"]
    assert offer["accepted"] is False
    assert offer["alert"]["name"] in ("handshake_failure", "protocol_version")
    assert offer["ciphers"] == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]
    proto = [f for f in r["findings"] if f["cause"] == "protocol_mismatch" and f["severity"] == "failure"]
    assert proto, r["findings"]
    assert "only TLSv1.0" in proto[0]["message"]
    assert "<Protocol>TLSv1.0</Protocol>" in proto[0]["fix"]
    # the chain is fine
    assert r["chain"]["trust"]["verified"] is True
    assert not [p for p in r["chain"]["problems"] if p["severity"] == "failure"]


def test_tls12_restricted_cipher_server(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1_2", "-cipher", "AES256-SHA256") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem,
                     "--versions", "TLSv1.2", "--ciphers", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        ok = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites",
                      "--versions", "TLSv1.2", "--ciphers", "TLS_RSA_WITH_AES_256_CBC_SHA256")
    assert accepted_versions(r) == ["TLSv1.2"]
    assert r["suites"]["TLSv1.2"] == ["TLS_RSA_WITH_AES_256_CBC_SHA256"]
    offer = r["offer"]
    assert offer["outcome"] == "server_alert"
    assert offer["alert"] == {"code": 40, "name": "handshake_failure", "level": "fatal", "sent_by": "server"}
    assert "cipher_mismatch" in causes(r)
    msg = next(f["message"] for f in r["findings"] if f["cause"] == "cipher_mismatch")
    assert "TLS_RSA_WITH_AES_256_CBC_SHA256" in msg
    assert "protocol_mismatch" not in causes(r)
    assert ok["offer"]["accepted"] is True
    assert ok["offer"]["cipher"] == "TLS_RSA_WITH_AES_256_CBC_SHA256"
    assert ok["suites"] == {}


def test_tls13_server_full_chain(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1_3") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem)
    assert accepted_versions(r) == ["TLSv1.3"]
    assert r["versions"]["TLSv1.2"]["alert"]["name"] == "protocol_version"
    ch = r["chain"]
    assert ch["version"] == "TLSv1.3"
    assert ch["sent"] == 2
    assert [c["subject"] for c in ch["certificates"]] == [f"CN={NAME}", "CN=tlsdiag Test Intermediate"]
    assert ch["hostname"]["matches"] is True
    assert ch["anchored"] is True
    assert ch["trust"]["verified"] is True
    assert causes(r) == set()
    assert any(f["severity"] == "ok" and "chain verifies" in f["message"] for f in r["findings"])


def test_chain_verifies_without_a_name_never_says_none(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem) as srv:
        r = run_json(srv.target, "--truststore", pki.root_pem, "--no-suites")
        rc, text, _ = run_probe(srv.target, "--truststore", pki.root_pem, "--no-suites", "--timeout", "3")
    assert r["servername"] is None and r["chain"]["trust"]["verified"] is True
    ok = [f["message"] for f in r["findings"] if "chain verifies" in f["message"]]
    assert ok and "None" not in ok[0] and "no server name" in ok[0]
    assert "verifies for None" not in text and rc == 0


def test_sni_required_python_server(pki: PKI) -> None:
    with PySNIServer(pki, missing="reject", reject_unknown=True) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    sni = r["sni"]
    assert sni["with_name"]["accepted"] is True
    assert sni["without_name"]["outcome"] == "server_alert"
    assert sni["without_name"]["alert"]["name"] == "handshake_failure"
    assert sni["unknown_name"]["alert"]["name"] == "unrecognized_name"
    assert "sni_required" in causes(r)
    assert any(f["cause"] == "sni_unrecognized" and f["severity"] == "info" for f in r["findings"])
    assert r["chain"]["certificates"][0]["subject"] == f"CN={NAME}"
    assert r["chain"]["trust"]["verified"] is True


def test_sni_different_certificate(pki: PKI) -> None:
    with PySNIServer(pki, missing="default", reject_unknown=False) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    sni = r["sni"]
    assert sni["with_name"]["accepted"] and sni["without_name"]["accepted"]
    assert sni["with_name"]["leaf_sha256"] != sni["without_name"]["leaf_sha256"]
    f = [x for x in r["findings"] if x["cause"] == "sni_required"]
    assert f and f[0]["severity"] == "warning"
    assert f"CN={OTHER}" in f[0]["message"] and f"CN={NAME}" in f[0]["message"]


def test_sni_warning_unrecognized_name(pki: PKI, tmp_path: Path) -> None:
    # s_server with -servername sends a *warning* unrecognized_name for other names (TLS 1.2), which JSSE
    # treats as fatal: the probe must see the warning alert on an otherwise successful handshake.
    with OpenSSLServer(tmp_path, "-cert", pki.other_pem, "-key", pki.other_key, "-cert_chain", pki.inter_pem,
                       "-servername", NAME, "-cert2", pki.leaf_pem, "-key2", pki.leaf_key,
                       "-tls1_2") as srv:
        r = run_json(srv.target, "--servername", "wrong.test", "--truststore", pki.root_pem, "--no-suites")
        good = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    w = r["sni"]["with_name"]
    assert w["accepted"] is True
    assert w["warning_alerts"] == [{"code": 112, "name": "unrecognized_name", "level": "warning",
                                    "sent_by": "server"}]
    assert "sni_unrecognized" in causes(r)
    assert "hostname_mismatch" in causes(r)
    # the right name switches to cert2; without SNI the default certificate comes back
    assert good["sni"]["with_name"]["warning_alerts"] == []
    assert good["sni"]["with_name"]["leaf_sha256"] != good["sni"]["without_name"]["leaf_sha256"]
    assert "sni_unrecognized" not in causes(good)


def test_expired_certificate(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.expired_pem, "-key", pki.expired_key, "-cert_chain", pki.inter_pem,
                       ) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    assert "expired_certificate" in causes(r)
    leaf = r["chain"]["certificates"][0]
    assert leaf["expired"] is True and leaf["days_left"] < 0
    assert r["chain"]["trust"]["verified"] is False
    assert "incomplete_chain" not in causes(r)


def test_missing_intermediate(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
        rc, text, err = run_probe(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    assert r["chain"]["sent"] == 1
    assert r["chain"]["anchored"] is False
    assert "incomplete_chain" in causes(r)
    assert "expired_certificate" not in causes(r)
    assert rc == 1      # a FAILURE verdict
    assert "incomplete_chain" in text and "Verdict:" in text and "TLSv1.3" in text


def test_hostname_mismatch_and_untrusted_root(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem) as srv:
        wrong = run_json(srv.target, "--servername", "myorg.example.test", "--truststore", pki.root_pem,
                         "--no-suites")
        # truststore that does not hold our root: the chain stops at an unknown issuer
        untrusted = run_json(srv.target, "--servername", NAME, "--truststore", pki.other_pem, "--no-suites")
    assert "hostname_mismatch" in causes(wrong)
    assert wrong["chain"]["hostname"]["matches"] is False
    assert "unknown_certificate" in causes(untrusted) or "incomplete_chain" in causes(untrusted)
    assert untrusted["chain"]["trust"]["verified"] is False


# ------------------------------------------------------------------------------------------ raw hello, units

def test_raw_client_hello_against_tls10_server(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-tls1",
                       "-cipher", "DEFAULT@SECLEVEL=0") as srv:
        addr = (socket.AF_INET, ("127.0.0.1", srv.port))
        t = probe.suite_table()
        ok = probe.raw_hello_probe(addr, ["TLSv1.0"], wire=WIRE, servername=NAME, timeout=3, suites=t, label="raw")
        no = probe.raw_hello_probe(addr, ["SSLv3"], wire=WIRE, servername=NAME, timeout=3, suites=t, label="raw")
        v13 = probe.raw_hello_probe(addr, ["TLSv1.3"], wire=WIRE, servername=NAME, timeout=3, suites=t, label="raw")
    assert ok.outcome == "accepted" and ok.server_version == "TLSv1.0"
    assert ok.cipher and ok.cipher.startswith("TLS_")
    assert no.outcome in ("server_alert", "closed") and not no.accepted
    assert not v13.negotiated and v13.outcome in ("server_alert", "server_chose_other")


def test_alert_names_from_openssl_reasons() -> None:
    assert probe.alert_from_reason("TLSV1_ALERT_PROTOCOL_VERSION") == 70
    assert probe.alert_from_reason("SSLV3_ALERT_HANDSHAKE_FAILURE") == 40
    assert probe.alert_from_reason("TLSV1_UNRECOGNIZED_NAME") == 112
    assert probe.alert_from_reason("SSLV3_ALERT_CERTIFICATE_EXPIRED") == 45
    assert probe.alert_from_reason("TLSV13_ALERT_CERTIFICATE_REQUIRED") == 116
    assert probe.alert_from_reason("TLSV1_ALERT_USER_CANCELLED") == 90
    assert probe.alert_from_reason("WRONG_VERSION_NUMBER") is None
    assert probe.alert_name(48) == "unknown_ca" and probe.alert_name(250) == "unknown-0xfa"


def test_server_hello_reader_is_bounded() -> None:
    """The probe reads whole handshake messages through the injected wire parsers and never raises."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x06" + b"\x00\x2b\x00\x02\x03\x04"
    msg = b"\x02" + len(body).to_bytes(3, "big") + body
    sh = probe.read_server_hello(WIRE, msg)
    assert sh is not None and sh.version == 0x0304 and sh.cipher == 0x1301 and not sh.hello_retry
    hrr = b"\x02" + len(body).to_bytes(3, "big") + body[:2] + _wire_py.HRR_RANDOM + body[34:]
    assert probe.read_server_hello(WIRE, hrr).hello_retry is True
    for cut in range(len(msg)):
        assert probe.read_server_hello(WIRE, msg[:cut]) is None     # cut short: not a ServerHello
    assert probe.read_certificates(WIRE, b"\x0b\x00\x00\x09\x00\x00\x06\x00\x00\x09", tls13=False) == []
    one = b"\x00\x00\x03abc"
    cert_msg = b"\x0b" + (3 + len(one)).to_bytes(3, "big") + len(one).to_bytes(3, "big") + one
    assert probe.read_certificates(WIRE, cert_msg, tls13=False) == [b"abc"]


# ------------------------------------------------------------------------------------------ error paths

def test_unreachable_port_exits_2() -> None:
    port = free_port()  # nothing listens there
    rc, out, err = run_probe(f"127.0.0.1:{port}", "--timeout", "2")
    assert rc == 2
    assert out == ""
    assert "cannot connect" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, needle", [
    (["127.0.0.1"], "HOST:PORT"),
    (["127.0.0.1:99999"], "port out of range"),
    (["127.0.0.1:443", "--versions", "TLSv9"], "unknown protocol version"),
    (["127.0.0.1:443", "--ciphers", "NOT-A-SUITE"], "unknown cipher suite"),
    (["127.0.0.1:443", "--timeout", "0"], "--timeout"),
    (["127.0.0.1:443", "--format", "xml"], "invalid choice"),
    ([], "required"),
    (["127.0.0.1:443", "--truststore", "/nonexistent/roots.pem"], "does not exist"),
])
def test_bad_arguments_exit_2(argv: list[str], needle: str) -> None:
    if "--truststore" in argv:  # needs a listener to get past the connect step
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(4)
            argv = [f"127.0.0.1:{s.getsockname()[1]}"] + argv[1:]
            rc, out, err = run_probe(*argv)
    else:
        rc, out, err = run_probe(*argv)
    assert rc == 2
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_non_tls_listener_reports_without_crashing() -> None:
    """A port that accepts TCP and closes at once: the probe runs (exit 0) and says nothing was accepted."""
    stop = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)

    def loop() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.close()
            except (socket.timeout, OSError):
                continue

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        r = run_json(f"127.0.0.1:{srv.getsockname()[1]}", "--servername", NAME)
    finally:
        stop.set()
        th.join(5)
        srv.close()
    assert accepted_versions(r) == []
    assert r["versions"]["TLSv1.2"]["outcome"] == "closed"
    assert "unknown" in causes(r)
    assert r["chain"]["sent"] == 0


def test_openssl_s_client_chain_fallback(pki: PKI, tmp_path: Path) -> None:
    """The fallback used when the message callback is missing returns the same TLS 1.3 chain."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1_3") as srv:
        ders = probe.chain_via_openssl("127.0.0.1", srv.port, NAME, 3)
        addr = (socket.AF_INET, ("127.0.0.1", srv.port))
        att = probe.handshake(addr, ["TLSv1.3"], wire=WIRE, servername=NAME, ciphers=None, timeout=3, label="t",
                              suites=probe.suite_table())
    assert len(ders) == 2
    assert att.accepted and att.chain == ders


def test_silent_server_times_out_bounded() -> None:
    """A listener that accepts and never answers: every attempt ends at the timeout, the probe still reports."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)  # the kernel completes the TCP handshakes; nobody ever reads or writes
    try:
        t0 = time.monotonic()
        r = run_json(f"127.0.0.1:{srv.getsockname()[1]}", "--servername", NAME, "--timeout", "0.3")
        elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert r["versions"]["TLSv1.2"]["outcome"] == "timeout"
    assert r["sni"]["without_name"]["outcome"] == "timeout"
    assert accepted_versions(r) == []
    assert elapsed < r["attempts"] * 0.3 + 3
    f = [x for x in r["findings"] if x["severity"] == "failure"]
    assert len(f) == 1 and f[0]["message"].startswith("no TLS answer") and "--servername" not in f[0]["fix"]


def test_offer_ciphers_without_versions_defaults_to_tls12(pki: PKI, tmp_path: Path) -> None:
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites",
                     "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256")
    assert r["offer"]["offered"] == ["TLSv1.2"]
    assert r["offer"]["accepted"] is True
    assert r["offer"]["version"] == "TLSv1.2" and r["offer"]["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert any("no --versions" in n for n in r["offer"]["notes"])


@pytest.mark.parametrize("version_flag, version, alert", [("-tls1_2", "TLSv1.2", "handshake_failure"),
                                                          ("-tls1_3", "TLSv1.3", "certificate_required")])
def test_client_certificate_required(pki: PKI, tmp_path: Path, version_flag: str, version: str, alert: str) -> None:
    """mTLS server (-Verify): the version is still reported as accepted (it was negotiated), the chain is
    still validated, and the failure is named client_certificate_missing, not a protocol problem."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-Verify", "1", "-CAfile", pki.root_pem, version_flag) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    assert accepted_versions(r) == []  # no handshake completes ...
    v = r["versions"][version]
    assert v["negotiated"] is True and v["client_cert_requested"] is True  # ... but the version was negotiated
    assert v["alert"]["name"] == alert and v["alert"]["sent_by"] == "server"
    assert [k for k, a in r["versions"].items() if a["negotiated"]] == [version]
    assert causes(r) == {"client_certificate_missing"}
    assert r["chain"]["sent"] == 2 and r["chain"]["trust"]["verified"] is True
    assert "sni_required" not in causes(r, "warning")


@pytest.mark.parametrize("version_flag", ["-tls1_2", "-tls1_3"])
def test_required_client_certificate_presented_is_not_optional(pki: PKI, tmp_path: Path, version_flag: str) -> None:
    """--client-cert against a server that requires one: the probe also tries once without it, and says
    "requires" (the alert it answers without one), never "optional"; the same client certificate against a
    server that only asks for one is "optional"."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-Verify", "1", "-CAfile", pki.root_pem, version_flag) as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites",
                     "--client-cert", pki.client_chain_pem, "--client-key", pki.client_key)
    texts = [f["message"] for f in r["findings"]]
    assert not any("optional" in m for m in texts), texts
    ok = [m for m in texts if "requires a client certificate" in m]
    assert ok and "accepts the one presented" in ok[0] and r["without_client_cert"]["client_cert_sent"] is False
    assert causes(r) == set()
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-verify", "1", "-CAfile", pki.root_pem, version_flag) as srv:
        opt = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites",
                       "--client-cert", pki.client_chain_pem, "--client-key", pki.client_key)
    assert any("optional client certificate" in f["message"] for f in opt["findings"])


def test_plain_http_port_is_not_tls() -> None:
    """A plain HTTP server: the verdict says "not TLS" (the bytes it answered), not "--servername", exit 1."""
    import http.server

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        rc, text, err = run_probe(f"127.0.0.1:{srv.server_address[1]}", "--timeout", "2", "--no-suites")
        r = run_json(f"127.0.0.1:{srv.server_address[1]}", "--no-suites")
    finally:
        srv.shutdown()
        srv.server_close()
    assert rc == 1 and "Traceback" not in err
    f = [x for x in r["findings"] if x["severity"] == "failure"]
    # the bytes it answered are shown (Python's server answers a garbled request line with an HTML error page)
    assert len(f) == 1 and f[0]["message"].startswith("not TLS") and "answered with b'" in f[0]["message"]
    assert "--servername" not in f[0]["fix"]
    assert "not TLS" in text and "retry with --servername" not in text
    assert r["versions"]["TLSv1.2"]["outcome"] == "not_tls"


def test_tls13_suites_enumerated_and_exact_offer(pki: PKI, tmp_path: Path) -> None:
    """TLS 1.3 suites come from hand-built ClientHellos; an exact TLS 1.3 offer is answered honestly."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem,
                     "--versions", "TLSv1.3", "--ciphers", "TLS_AES_256_GCM_SHA384")
        ok = run_json(srv.target, "--servername", NAME, "--no-suites",
                      "--versions", "TLSv1.3", "--ciphers", "TLS_CHACHA20_POLY1305_SHA256")
    assert sorted(r["suites"]["TLSv1.3"]) == ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]
    assert r["offer"]["method"] == "raw-client-hello"
    assert r["offer"]["negotiated"] is False
    assert r["offer"]["alert"]["name"] == "handshake_failure"
    assert "cipher_mismatch" in causes(r)
    assert ok["offer"]["negotiated"] is True and ok["offer"]["server_cipher"] == "TLS_CHACHA20_POLY1305_SHA256"


def test_mixed_offer_server_settles_on_tls13_first(pki: PKI, tmp_path: Path) -> None:
    """OpenSSL picks the version before the suite: a TLSv1.2+1.3 offer whose only TLS 1.3 suite the server
    lacks fails, although one of its TLS 1.2 suites would have worked; the verdict says so."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-ciphersuites", "TLS_AES_128_GCM_SHA256") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--versions", "TLSv1.2,TLSv1.3",
                     "--ciphers", "TLS_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    assert r["offer"]["alert"]["name"] == "handshake_failure"
    f = next(x for x in r["findings"] if x["cause"] == "cipher_mismatch")
    assert "settles on TLSv1.3" in f["message"] and "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 would work" in f["message"]
    assert r["suites"]["TLSv1.3"] == ["TLS_AES_128_GCM_SHA256"]


@pytest.mark.parametrize("version_flag", ["-tls1_2", "-tls1_3"])
def test_client_certificate_presented(pki: PKI, tmp_path: Path, version_flag: str) -> None:
    """--client-cert: a good one is accepted; an expired one and an untrusted one are rejected by the server
    and named from the server's alert (rejected_by server)."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-Verify", "2", "-verify_return_error", "-CAfile", pki.root_pem, version_flag) as srv:
        base = (srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
        good = run_json(*base, "--client-cert", pki.client_chain_pem, "--client-key", pki.client_key)
        expired = run_json(*base, "--client-cert", pki.client_expired_chain_pem, "--client-key", pki.client_expired_key)
        untrusted = run_json(*base, "--client-cert", pki.client_self_pem, "--client-key", pki.client_self_key)
    assert causes(good) == set()
    assert any(a["accepted"] and a["client_cert_sent"] for a in good["versions"].values())
    assert "expired_certificate" in causes(expired)
    e = next(f for f in expired["findings"] if f["cause"] == "expired_certificate")
    assert "certificate_expired" in e["message"] and "rejected_by server" in e["message"]
    u = [f for f in untrusted["findings"] if f["severity"] == "failure"]
    assert [f["cause"] for f in u] == ["unknown_certificate"] and "unknown_ca" in u[0]["message"]


def test_client_cert_bad_arguments(pki: PKI) -> None:
    rc, out, err = run_probe("127.0.0.1:1", "--client-cert", "/nonexistent.pem")
    assert rc == 2 and "cannot load client certificate" in err and "Traceback" not in err
    rc, out, err = run_probe("127.0.0.1:1", "--client-cert", pki.root_pem)  # no key anywhere
    assert rc == 2 and "cannot load client certificate" in err
    rc, out, err = run_probe("127.0.0.1:1", "--client-key", pki.client_key)
    assert rc == 2 and "--client-key needs --client-cert" in err


def test_ipv6_target(pki: PKI, tmp_path: Path) -> None:
    try:
        free_port(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       host="::1") as srv:
        r = run_json(srv.target, "--servername", NAME, "--truststore", pki.root_pem, "--no-suites")
    assert r["connected_to"] == "::1"
    assert "TLSv1.2" in accepted_versions(r) and causes(r) == set()


def test_ip_target_without_name_hints_at_servername(pki: PKI) -> None:
    """An SNI-only server probed by IP without --servername: nothing is accepted, and the verdict says to
    retry with a name instead of blaming the protocol."""
    with PySNIServer(pki, missing="reject", reject_unknown=True) as srv:
        r = run_json(srv.target, "--no-suites")
    assert r["servername"] is None
    assert accepted_versions(r) == []
    f = next(x for x in r["findings"] if x["cause"] == "unknown" and x["severity"] == "failure")
    assert "--servername" in f["fix"]
    assert "with_name" not in r["sni"] and r["sni"]["without_name"]["alert"]["name"] == "handshake_failure"


def test_hello_parsers_never_raise_on_random_bytes() -> None:
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.booleans())
    def check(data: bytes, tls13: bool) -> None:
        for msg in (data, b"\x02" + data, b"\x0b" + data):
            sh = probe.read_server_hello(WIRE, msg)
            assert sh is None or isinstance(sh.version, int)
            certs = probe.read_certificates(WIRE, msg, tls13)
            assert len(certs) <= probe.MAX_CHAIN_CERTS and all(isinstance(c, bytes) for c in certs)

    check()


def test_sslv3_only_responder() -> None:
    """No local TLS stack can serve SSLv3 any more, so a scripted responder answers every ClientHello with an
    SSLv3 ServerHello (TLS_RSA_WITH_AES_128_CBC_SHA): the hand-built SSLv3 hello must read that as accepted,
    the real TLS 1.x handshakes as "server chose SSLv3", and the verdict must not advise pinning SSLv3."""
    stop = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    body = b"\x03\x00" + bytes(32) + b"\x00" + b"\x00\x2f" + b"\x00"
    server_hello = b"\x02" + len(body).to_bytes(3, "big") + body
    record = b"\x16\x03\x00" + len(server_hello).to_bytes(2, "big") + server_hello

    def loop() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.settimeout(2)
                if c.recv(5):
                    c.sendall(record)
                    time.sleep(0.05)
            except OSError:
                pass
            finally:
                c.close()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        r = run_json(f"127.0.0.1:{srv.getsockname()[1]}", "--servername", NAME, "--no-suites")
    finally:
        stop.set()
        th.join(5)
        srv.close()
    v3 = r["versions"]["SSLv3"]
    assert v3["method"] == "raw-client-hello" and v3["negotiated"] is True
    assert v3["cipher"] == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert r["versions"]["TLSv1.2"]["outcome"] == "server_chose_other"
    assert r["versions"]["TLSv1.2"]["server_version"] == "SSLv3"
    f = next(x for x in r["findings"] if x["cause"] == "protocol_mismatch" and x["severity"] == "failure")
    assert "only SSLv3" in f["message"] and "must not be pinned" in f["fix"]


def test_fallback_without_message_callback(pki: PKI, tmp_path: Path) -> None:
    """With OpenSSL's message callback unavailable the probe still works: versions from completed
    handshakes, alerts from OpenSSL's error reasons, the chain from openssl s_client -showcerts."""
    with OpenSSLServer(tmp_path, "-cert", pki.leaf_pem, "-key", pki.leaf_key, "-cert_chain", pki.inter_pem,
                       "-tls1_3") as srv:
        opts = probe.ProbeOptions(host="127.0.0.1", port=srv.port, servername=NAME, truststore=pki.root_pem,
                                  timeout=3, enumerate_suites=False)
        r = json.loads(json.dumps(probe.Prober(opts, WIRE, msg_callback=False).run(), default=str))
    assert r["chain_source"] == "openssl s_client -showcerts"
    assert accepted_versions(r) == ["TLSv1.3"]
    assert r["versions"]["TLSv1.2"]["alert"]["name"] == "protocol_version"
    assert r["chain"]["sent"] == 2 and r["chain"]["trust"]["verified"] is True
    assert causes(r) == set()
