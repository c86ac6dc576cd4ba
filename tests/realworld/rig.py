"""The namespaces, PKI and processes behind the real-world captures (issue 15).

    rwc (client)  rwu-c 10.66.0.1 fd66::1 ===veth=== rwu-s 10.66.0.2 fd66::2  rws (server)
    rws (server)  rwm-s 10.67.0.1 ===veth=== rwm-m 10.67.0.2  rwm (ERSPAN collector)

The encapsulations put an inner network 10.77.0.1/24 fd77::1/64 (client) -- 10.77.0.2 fd77::2
(server) on a tunnel device (kernel VXLAN, or a TUN device driven by tund.py).  Every name
starts with "rw" (helpers share the machine).  Root only.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("RW_WORK", "/tmp/rw"))
PKI = WORK / "pki"

CLIENT_NS, SERVER_NS, MIRROR_NS = "rwc", "rws", "rwm"
C_IF, S_IF = "rwu-c", "rwu-s"
C4, S4, C6, S6 = "10.66.0.1", "10.66.0.2", "fd66::1", "fd66::2"
IC4, IS4, IC6, IS6 = "10.77.0.1", "10.77.0.2", "fd77::1", "fd77::2"
M_S, M_M, MS4, MM4 = "rwm-s", "rwm-m", "10.67.0.1", "10.67.0.2"


def _arg(a):
    return a if isinstance(a, bytes) else str(a)     # bytes pass as they are (non-ASCII ALPN)


def sh(argv, check=True, **kw):
    r = subprocess.run([_arg(a) for a in argv], capture_output=True, **kw)
    if check and r.returncode:
        raise RuntimeError("%s -> %d: %s %s" % (" ".join(map(str, argv)), r.returncode,
                                                r.stdout.decode(errors="replace")[-2000:],
                                                r.stderr.decode(errors="replace")[-2000:]))
    return r


def nsx(ns, *argv):
    return ["ip", "netns", "exec", ns] + [_arg(a) for a in argv]


def ns_sh(ns, *argv, check=True, **kw):
    return sh(nsx(ns, *argv), check=check, **kw)


def spawn(ns, *argv, **kw) -> subprocess.Popen:
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(nsx(ns, *argv), start_new_session=True, **kw)


def stop(p: subprocess.Popen | None, sig=signal.SIGTERM) -> None:
    if p is None or p.poll() is not None:
        return
    os.killpg(p.pid, sig)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)


def offloads_off(ns, ifname):
    ns_sh(ns, "ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
          check=False)


def teardown() -> None:
    names = {line.split()[0] for line in sh(["ip", "netns", "list"]).stdout.decode().splitlines()
             if line.strip()}
    for ns in (CLIENT_NS, SERVER_NS, MIRROR_NS):
        if ns in names:
            # processes left in the namespace (servers) are ended by their pid, one by one
            pids = sh(["ip", "netns", "pids", ns], check=False).stdout.decode().split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(["ip", "netns", "del", ns], check=False)


def setup(mirror: bool = False) -> None:
    teardown()
    for ns in (CLIENT_NS, SERVER_NS) + ((MIRROR_NS,) if mirror else ()):
        sh(["ip", "netns", "add", ns])
        ns_sh(ns, "ip", "link", "set", "lo", "up")
        ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
        ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
    sh(["ip", "link", "add", C_IF, "netns", CLIENT_NS, "type", "veth", "peer", "name", S_IF,
        "netns", SERVER_NS])
    for ns, ifn, a4, a6 in ((CLIENT_NS, C_IF, C4, C6), (SERVER_NS, S_IF, S4, S6)):
        ns_sh(ns, "ip", "addr", "add", a4 + "/24", "dev", ifn)
        ns_sh(ns, "ip", "addr", "add", a6 + "/64", "dev", ifn, "nodad")
        ns_sh(ns, "ip", "link", "set", ifn, "up")
        offloads_off(ns, ifn)
    if mirror:
        sh(["ip", "link", "add", M_S, "netns", SERVER_NS, "type", "veth", "peer", "name", M_M,
            "netns", MIRROR_NS])
        for ns, ifn, a4 in ((SERVER_NS, M_S, MS4), (MIRROR_NS, M_M, MM4)):
            ns_sh(ns, "ip", "addr", "add", a4 + "/24", "dev", ifn)
            ns_sh(ns, "ip", "link", "set", ifn, "up")
            offloads_off(ns, ifn)
    # both ends know each other's MAC at once: no ARP/ND race in the first packets
    mac = {ns: ns_sh(ns, "cat", "/sys/class/net/%s/address" % ifn).stdout.decode().strip()
           for ns, ifn in ((CLIENT_NS, C_IF), (SERVER_NS, S_IF))}
    for ns, ifn, peer_ns, a4, a6 in ((CLIENT_NS, C_IF, SERVER_NS, S4, S6),
                                     (SERVER_NS, S_IF, CLIENT_NS, C4, C6)):
        ns_sh(ns, "ip", "neigh", "replace", a4, "lladdr", mac[peer_ns], "dev", ifn, "nud",
              "permanent")
        ns_sh(ns, "ip", "-6", "neigh", "replace", a6, "lladdr", mac[peer_ns], "dev", ifn, "nud",
              "permanent")


def mac_of(ns, ifn) -> str:
    return ns_sh(ns, "cat", "/sys/class/net/%s/address" % ifn).stdout.decode().strip()


def inner_addresses(dev: str, mtu: int) -> None:
    for ns, a4, p4, a6 in ((CLIENT_NS, IC4, IS4, IC6), (SERVER_NS, IS4, IC4, IS6)):
        ns_sh(ns, "ip", "link", "set", dev, "mtu", mtu, "up")
        ns_sh(ns, "ip", "addr", "add", a4 + "/24", "dev", dev)
        ns_sh(ns, "ip", "addr", "add", a6 + "/64", "dev", dev, "nodad")
        offloads_off(ns, dev)


def wait_listen(ns, port, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns_sh(ns, "ss", "-Hltn", "sport = :%d" % port).stdout.strip():
            return
        time.sleep(0.1)
    raise RuntimeError("nothing listens on %d in %s" % (port, ns))


class Capture:
    """tcpdump on an interface of a namespace, to ``path`` (full frames, written at once)."""

    def __init__(self, ns, ifname, path: Path, bpf: str = "") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        # --immediate-mode: without it TPACKET_V3 holds packets in a block that tcpdump does
        # not drain when it is interrupted (a short capture came out empty)
        argv = ["tcpdump", "-i", ifname, "-s", "0", "-U", "--immediate-mode", "-n", "-Z", "root",
                "-w", str(path)]
        if bpf:
            argv.append(bpf)
        self.proc = spawn(ns, *argv, stderr=subprocess.PIPE)
        # tcpdump prints "listening on ..." once the socket is live
        line = self.proc.stderr.readline().decode()
        if "listening" not in line:
            raise RuntimeError("tcpdump: %s" % line)
        time.sleep(0.2)

    def close(self) -> None:
        time.sleep(0.5)
        stop(self.proc, signal.SIGINT)


# ---------------------------------------------------------------------------------------------
# PKI (openssl CLI): a root, an intermediate, a leaf for rw.test; and a long chain for the
# late-data capture
# ---------------------------------------------------------------------------------------------

def _openssl(*argv) -> None:
    sh(["openssl"] + list(argv))


def make_pki() -> Path:
    if (PKI / "leaf.pem").exists():
        return PKI
    PKI.mkdir(parents=True, exist_ok=True)
    ext = PKI / "ext.cnf"
    ext.write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,"
        "keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:rw.test,"
        "DNS:*.rw.test,IP:%s,IP:%s,IP:%s,IP:%s\n" % (S4, IS4, S6, IS6))

    def key(name, alg="ec"):
        if alg == "ec":
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", PKI / (name + ".key"))
        else:
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%s" % alg,
                     "-out", PKI / (name + ".key"))

    def cert(name, cn, issuer, section, alg="ec"):
        key(name, alg)
        _openssl("req", "-new", "-key", PKI / (name + ".key"), "-subj", "/O=tlsdiag rw/CN=%s" % cn,
                 "-out", PKI / (name + ".csr"))
        if issuer is None:
            _openssl("x509", "-req", "-in", PKI / (name + ".csr"),
                     "-signkey", PKI / (name + ".key"),
                     "-days", "3650", "-extfile", ext, "-extensions", section,
                     "-out", PKI / (name + ".pem"), "-set_serial", "1")
        else:
            _openssl("x509", "-req", "-in", PKI / (name + ".csr"), "-CA", PKI / (issuer + ".pem"),
                     "-CAkey", PKI / (issuer + ".key"), "-days", "3650", "-extfile", ext,
                     "-extensions", section, "-out", PKI / (name + ".pem"),
                     "-set_serial", str(zlib.crc32(name.encode()) & 0xFFFFFF))

    cert("root", "rw root", None, "ca")
    cert("int", "rw intermediate", "root", "ca")
    cert("leaf", "rw.test", "int", "leaf")
    (PKI / "chain.pem").write_text((PKI / "int.pem").read_text())
    (PKI / "fullchain.pem").write_text((PKI / "leaf.pem").read_text()
                                       + (PKI / "int.pem").read_text())
    # the long chain: RSA-4096 root, six RSA-4096 intermediates, an RSA-4096 leaf (~11 KB)
    cert("broot", "rw big root", None, "ca", alg="4096")
    prev = "broot"
    chain = []
    for i in range(6):
        cert("bint%d" % i, "rw big intermediate %d" % i, prev, "ca", alg="4096")
        chain.insert(0, "bint%d" % i)
        prev = "bint%d" % i
    cert("bleaf", "rw.test", prev, "leaf", alg="4096")
    (PKI / "bchain.pem").write_text("".join((PKI / (n + ".pem")).read_text() for n in chain))
    for p in PKI.iterdir():
        p.chmod(0o644)
    PKI.chmod(0o755)
    return PKI


def s_server(ns, port=443, big=False, extra=()) -> subprocess.Popen:
    """``openssl s_server -www`` (with -www it does not read stdin: NOTES-capture.md c)."""
    pre = "b" if big else ""
    p = spawn(ns, "openssl", "s_server", "-www", "-accept", port, "-cert",
              PKI / (pre + "leaf.pem"), "-key", PKI / (pre + "leaf.key"), "-cert_chain",
              PKI / (pre + "chain.pem"), *extra)
    wait_listen(ns, port)
    return p


def s_client(ns, host, port=443, extra=(), stdin=b"GET / HTTP/1.0\r\n\r\n", timeout=20):
    target = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
    sni = () if "-noservername" in extra else ("-servername", "rw.test")
    return ns_sh(ns, "openssl", "s_client", "-connect", target, *sni,
                 "-CAfile", PKI / "root.pem", "-ign_eof", *extra, input=stdin, timeout=timeout,
                 check=False)


def curl(ns, host, port=443, extra=(), timeout=20):
    url_host = ("[%s]" % host) if ":" in host else host
    return ns_sh(ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                 PKI / "root.pem", "--resolve", "rw.test:%d:%s" % (port, url_host),
                 "https://rw.test:%d/" % port, *extra, timeout=timeout, check=False)


def python() -> str:
    return sys.executable


def copy_to(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
