"""Make the real-world captures of tests/data/realworld/ (issue 15).  Root only; a few minutes.

    python3 tests/realworld/make_captures.py [NAME ...]      # default: every capture
    python3 tests/realworld/oracle.py                        # then the tshark oracle files

Each capture is a few connections between network namespaces made here (names start with
"rw"), with real TLS programs (OpenSSL's s_server / s_client, curl) and, for STARTTLS, the real
servers and clients from Debian.  How each one is made -- kernel device, userspace
encapsulation (tund.py, where this kernel has no module) or crafted -- is written to
tests/data/realworld/CAPTURES.json and explained in tests/realworld/README.md.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rig  # noqa: E402
from rig import (C4, C6, C_IF, CLIENT_NS, IS4, IS6, M_M, MIRROR_NS, MM4, MS4, S4, S6,  # noqa: E402
                 S_IF, SERVER_NS)

OUT = Path(__file__).resolve().parents[1] / "data" / "realworld"
MANIFEST = OUT / "CAPTURES.json"
TUND = Path(__file__).resolve().parent / "tund.py"

MADE: dict = {}


def record(name: str, how: str, what: str) -> None:
    MADE[name] = {"how": how, "what": what}


def tls_pair(host: str) -> None:
    """Two connections: curl (TLS 1.3, HTTP/1.1 over ALPN) and s_client forced to TLS 1.2."""
    r = rig.curl(CLIENT_NS, host)
    if r.stdout.decode().strip() != "200":
        raise RuntimeError("curl to %s: %r %r" % (host, r.stdout, r.stderr[-500:]))
    r = rig.s_client(CLIENT_NS, host, extra=("-tls1_2",))
    if b"200 ok" not in r.stdout.lower():
        raise RuntimeError("s_client to %s: %r" % (host, r.stdout[-500:]))


# ---------------------------------------------------------------------------------------------
# encapsulations
# ---------------------------------------------------------------------------------------------

def encap_vxlan(name: str) -> None:
    rig.setup()
    for ns, local, remote in ((CLIENT_NS, C4, S4), (SERVER_NS, S4, C4)):
        rig.ns_sh(ns, "ip", "link", "add", "rwvx", "type", "vxlan", "id", "42", "local", local,
                  "remote", remote, "dstport", "4789", "dev", ns == CLIENT_NS and C_IF or S_IF)
    rig.inner_addresses("rwvx", 1350)
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"))
    tls_pair(IS4)
    cap.close()
    rig.stop(srv)
    record(name, "kernel", "kernel VXLAN devices (VNI 42, UDP 4789) over a veth; TLS 1.3 (curl) "
           "and TLS 1.2 (s_client) to s_server through the overlay; captured on the underlay")


#: mode -> (name, tund mode, underlay family, inner host, description)
TUND_MODES = {
    "gre": ("gre", 4, IS4, "GRE (RFC 2784, protocol 0x0800) over IPv4"),
    "ipip": ("ipip", 4, IS4, "IPv4-in-IPv4 (protocol 4)"),
    "ip4in6": ("ip4in6", 6, IS4, "IPv4-in-IPv6 (next header 4, as ip6tnl)"),
    "sit": ("sit", 4, IS6, "IPv6-in-IPv4 (protocol 41, as sit)"),
    "ip6in6": ("ip6in6", 6, IS6, "IPv6-in-IPv6 (next header 41, as ip6tnl)"),
    "geneve": ("geneve", 4, IS4, "GENEVE (RFC 8926, UDP 6081, VNI 42) carrying Ethernet"),
    "gtpu": ("gtpu", 4, IS4, "GTPv1-U G-PDUs (UDP 2152, TEID 0xc0ffee)"),
    "capwap": ("capwap", 4, IS4, "CAPWAP data channel (RFC 5415, UDP 5247) carrying 802.3 frames"),
    "mpls": ("mpls", 0, IS4, "MPLS, two-label stack (1000, 100 bottom) over Ethernet"),
    "pppoe": ("pppoe", 0, IS4, "PPPoE session stage (RFC 2516, session 0x2a17), PPP IPv4"),
}


def encap_tund(name: str, mode: str) -> None:
    tmode, fam, host, desc = TUND_MODES[mode]
    rig.setup()
    procs = []
    for ns, side, local, remote, dev, peer in (
            (CLIENT_NS, "client", C4 if fam != 6 else C6, S4 if fam != 6 else S6, C_IF,
             rig.mac_of(SERVER_NS, S_IF)),
            (SERVER_NS, "server", S4 if fam != 6 else S6, C4 if fam != 6 else C6, S_IF,
             rig.mac_of(CLIENT_NS, C_IF))):
        p = rig.spawn(ns, rig.python(), TUND, tmode, "--side", side, "--tun", "rwtun",
                      "--local", local, "--remote", remote, "--dev", dev, "--peer-mac", peer,
                      stdout=rig.subprocess.PIPE, stderr=None)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("tund %s did not start" % mode)
        procs.append(p)
    rig.inner_addresses("rwtun", 1300)
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"))
    tls_pair(host)
    cap.close()
    rig.stop(srv)
    for p in procs:
        rig.stop(p)
    record(name, "userspace-encap",
           "%s between two TUN devices, encapsulated by tests/realworld/tund.py (this kernel "
           "has no module for it); TLS 1.3 (curl) and TLS 1.2 (s_client) to s_server over the "
           "inner network; captured on the underlay veth" % desc)


def encap_erspan(name: str) -> None:
    """A mirror session: the server's veth copied as ERSPAN II to a collector namespace."""
    rig.setup(mirror=True)
    sink = rig.spawn(MIRROR_NS, rig.python(), "-c",
                     "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,47); "
                     "time.sleep(600)")      # a GRE socket: no ICMP protocol-unreachable back
    mirror = rig.spawn(SERVER_NS, rig.python(), TUND, "mirror", "--local", MS4, "--remote", MM4,
                       "--dev", S_IF, stdout=rig.subprocess.PIPE, stderr=None)
    if mirror.stdout.readline().strip() != b"ready":
        raise RuntimeError("mirror did not start")
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(MIRROR_NS, M_M, OUT / (name + ".pcap"))
    tls_pair(S4)
    cap.close()
    for p in (srv, mirror, sink):
        rig.stop(p)
    record(name, "userspace-encap",
           "ERSPAN type II (GRE 0x88BE, session 123): tund.py mirrors every frame of the "
           "server's veth to a collector namespace, as a switch's mirror session does (this "
           "kernel has no erspan device); TLS 1.3 + 1.2 as above; captured at the collector")


# ---------------------------------------------------------------------------------------------
# STARTTLS: real servers from Debian, openssl s_client -starttls and the real clients
# ---------------------------------------------------------------------------------------------

W = rig.WORK


def _fresh(path: Path, owner: str | None = None, mode: int = 0o755) -> Path:
    rig.sh(["rm", "-rf", path])
    path.mkdir(parents=True)
    path.chmod(mode)
    if owner:
        rig.sh(["chown", "-R", "%s:%s" % (owner, owner), path])
    return path


def _owned_key(owner: str) -> Path:
    """A copy of the leaf key only ``owner`` reads (PostgreSQL insists)."""
    d = _fresh(W / ("keys-" + owner), owner, 0o700)
    k = d / "leaf.key"
    k.write_bytes((rig.PKI / "leaf.key").read_bytes())
    rig.sh(["chown", "%s:%s" % (owner, owner), k])
    k.chmod(0o600)
    return k


def starttls_capture(name, start_server, port, clients, what) -> None:
    rig.setup()
    procs = start_server()
    try:
        rig.wait_listen(SERVER_NS, port)
        cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"), "tcp port %d" % port)
        for argv, stdin, env, ok in clients:
            r = rig.ns_sh(CLIENT_NS, "env", *env, *argv, input=stdin, timeout=30, check=False)
            out = r.stdout + r.stderr
            if ok not in out:
                raise RuntimeError("%s: %r not in %r" % (argv[0], ok, out[-1500:]))
            time.sleep(0.3)
        cap.close()
    finally:
        for p in procs:
            rig.stop(p)
    record(name, "real", what)


def s_client_starttls(proto, port, stdin, extra=(), ok=b"Verify return code: 0"):
    # TLS 1.2, so that the server's certificates travel in clear (the real clients do 1.3);
    # -ign_eof keeps it reading until the server closes after our commands; with no commands
    # it closes (close_notify, FIN) once the handshake is done and stdin is at its end
    return (["openssl", "s_client", "-connect", "%s:%d" % (S4, port), "-starttls", proto,
             "-tls1_2", "-CAfile", rig.PKI / "root.pem", "-verify_hostname", "rw.test",
             *(("-ign_eof",) if stdin else ()), *extra], stdin, (), ok)


def starttls_postgres(name) -> None:
    pg = Path("/usr/lib/postgresql/15/bin")
    data = W / "pgdata"

    def start():
        _fresh(data, "postgres", 0o700)
        _fresh(W / "pgsock", "postgres")
        key = _owned_key("postgres")
        rig.sh(["runuser", "-u", "postgres", "--", pg / "initdb", "-D", data, "-A", "trust"])
        with open(data / "postgresql.conf", "a") as fh:
            fh.write("listen_addresses = '%s'\nport = 5432\nunix_socket_directories = '%s'\n"
                     "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n"
                     % (S4, W / "pgsock", rig.PKI / "fullchain.pem", key))
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all %s/32 trust\n" % C4)
        return [rig.spawn(SERVER_NS, "runuser", "-u", "postgres", "--", pg / "postgres",
                          "-D", data)]

    starttls_capture(name, start, 5432, [
        (["psql", "host=%s port=5432 user=postgres dbname=postgres sslmode=verify-full "
          "sslrootcert=%s gssencmode=disable" % (S4, rig.PKI / "root.pem"), "-c",
          "select 'tls ok'"], b"", ("PGSSLSNI=1",), b"tls ok"),
        (["psql", "host=%s port=5432 user=postgres dbname=postgres sslmode=require "
          "ssl_max_protocol_version=TLSv1.2 gssencmode=disable" % S4, "-c", "select 'tls ok'"],
         b"", (), b"tls ok"),
        s_client_starttls("postgres", 5432, b"", ok=b"Verify return code: 0"),
    ], "PostgreSQL 15 (Debian) with ssl=on: psql (libpq; sslmode=verify-full, then "
       "sslmode=require with TLS 1.2 at most) and openssl s_client -starttls postgres -tls1_2; "
       "SSLRequest answered by the single byte 'S', then TLS")


def starttls_mysql_server() -> list:
    data = W / "mysql"
    _fresh(data, "mysql", 0o750)
    rig.sh(["mariadb-install-db", "--user=mysql", "--datadir=%s" % data,
            "--auth-root-authentication-method=normal", "--skip-test-db"])
    return [rig.spawn(SERVER_NS, "mariadbd", "--user=mysql", "--datadir=%s" % data,
                      "--socket=%s" % (data / "mysql.sock"),
                      "--pid-file=%s" % (data / "mysql.pid"),
                      "--bind-address=%s" % S4, "--port=3306", "--skip-grant-tables",
                      "--ssl-cert=%s" % (rig.PKI / "fullchain.pem"),
                      "--ssl-key=%s" % (rig.PKI / "leaf.key"),
                      "--ssl-ca=%s" % (rig.PKI / "root.pem"), "--skip-log-bin")]


def starttls_mysql(name) -> None:
    starttls_capture(name, starttls_mysql_server, 3306, [
        (["mariadb", "-h", S4, "-P", "3306", "-u", "root", "--ssl",
          "--ssl-ca=%s" % (rig.PKI / "root.pem"), "-e", "select 'tls ok'"], b"", (), b"tls ok"),
        s_client_starttls("mysql", 3306, b""),
    ], "MariaDB 10.11 (Debian) with --ssl-cert: the mariadb client (--ssl) and openssl s_client "
       "-starttls mysql -tls1_2; the SSL request in the handshake, then TLS")


def starttls_mysql_coalesced(name) -> None:
    client = Path(__file__).resolve().parent / "mysql_coalesced.py"
    starttls_capture(name, starttls_mysql_server, 3306, [
        ([sys.executable, client, S4, "3306", rig.PKI / "root.pem", "rw.test"] + extra, b"", (),
         b"tls ok") for extra in ([], ["tls1.2"])
    ], "MariaDB 10.11 (Debian) with --ssl-cert; the client (tests/realworld/mysql_coalesced.py, "
       "Python ssl through memory BIOs) sends the SSL request and its ClientHello in one TCP "
       "segment, TLS 1.3 then TLS 1.2")


def starttls_smtp(name) -> None:
    conf = W / "postfix"

    def start():
        _fresh(conf)
        for f in ("main.cf", "master.cf"):
            (conf / f).write_bytes(Path("/etc/postfix", f).read_bytes())
        rig.sh(["postconf", "-c", conf, "-e", "inet_interfaces = %s" % S4, "inet_protocols = ipv4",
                "myhostname = rw.test", "mydestination = rw.test",
                "maillog_file = %s" % (W / "postfix.log"),
                "maillog_file_prefixes = %s" % W,
                "smtpd_tls_cert_file = %s" % (rig.PKI / "fullchain.pem"),
                "smtpd_tls_key_file = %s" % (rig.PKI / "leaf.key"),
                "smtpd_tls_security_level = may", "compatibility_level = 3.6"])
        # postfix runs a configuration directory other than /etc/postfix only when the default
        # configuration lists it (else "postfix start" exits 1, saying why to syslog only)
        rig.sh(["postconf", "-e", "alternate_config_directories = %s" % conf])
        rig.ns_sh(SERVER_NS, "postfix", "-c", conf, "start")
        return []

    try:
        starttls_capture(name, start, 25, [
            s_client_starttls("smtp", 25, b"EHLO client.rw.test\r\nQUIT\r\n", ok=b"221"),
            (["curl", "-sS", "--ssl-reqd", "--cacert", rig.PKI / "root.pem", "--resolve",
              "rw.test:25:%s" % S4, "smtp://rw.test:25", "--mail-from", "a@rw.test",
              "--mail-rcpt", "root@rw.test", "-T", "-"], b"Subject: tls\r\n\r\nok\r\n", (), b""),
        ], "Postfix 3.7 (Debian), smtpd_tls_security_level=may: openssl s_client -starttls "
           "smtp -tls1_2 "
           "(EHLO, STARTTLS, QUIT) and curl --ssl-reqd sending a mail")
    finally:
        if _ns_up():
            rig.ns_sh(SERVER_NS, "postfix", "-c", conf, "stop", check=False)
        rig.sh(["postconf", "-X", "alternate_config_directories"], check=False)


def _ns_up() -> bool:
    return SERVER_NS in rig.sh(["ip", "netns", "list"]).stdout.decode()


def _dovecot_conf() -> Path:
    conf = W / "dovecot.conf"
    _fresh(W / "dovecot-run")
    _fresh(W / "mail", None, 0o777)
    conf.write_text(
        "protocols = imap pop3\nlisten = %s\nbase_dir = %s\nlog_path = %s\n"
        "ssl = yes\nssl_cert = <%s\nssl_key = <%s\nauth_mechanisms = plain\n"
        "disable_plaintext_auth = yes\nmail_location = maildir:%s/%%u\n"
        "passdb {\n  driver = static\n  args = password=rw\n}\n"
        "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=%s/%%u\n}\n"
        % (S4, W / "dovecot-run", W / "dovecot.log", rig.PKI / "fullchain.pem",
           rig.PKI / "leaf.key", W / "mail", W / "mail"))
    return conf


def starttls_imap(name) -> None:
    def start():
        return [rig.spawn(SERVER_NS, "dovecot", "-F", "-c", _dovecot_conf())]

    starttls_capture(name, start, 143, [
        s_client_starttls("imap", 143, b"a LOGIN user rw\r\nb LOGOUT\r\n", ok=b"b OK"),
        (["curl", "-sS", "--ssl-reqd", "--cacert", rig.PKI / "root.pem", "--resolve",
          "rw.test:143:%s" % S4, "imap://rw.test:143/", "-u", "user:rw"], b"", (), b"INBOX"),
    ], "Dovecot 2.3 (Debian): openssl s_client -starttls imap -tls1_2 (LOGIN, LOGOUT) and curl "
       "--ssl-reqd listing the mailboxes")


def starttls_pop3(name) -> None:
    def start():
        return [rig.spawn(SERVER_NS, "dovecot", "-F", "-c", _dovecot_conf())]

    starttls_capture(name, start, 110, [
        s_client_starttls("pop3", 110, b"USER user\r\nPASS rw\r\nQUIT\r\n", ok=b"Logging out"),
        (["curl", "-sS", "--ssl-reqd", "--cacert", rig.PKI / "root.pem", "--resolve",
          "rw.test:110:%s" % S4, "pop3://rw.test:110/", "-u", "user:rw"], b"", (), b""),
    ], "Dovecot 2.3 (Debian): openssl s_client -starttls pop3 -tls1_2 (STLS, USER/PASS, QUIT) and "
       "curl --ssl-reqd")


def starttls_ftp(name) -> None:
    def start():
        root = _fresh(W / "ftproot", None, 0o555)
        _fresh(Path("/var/run/vsftpd/empty"), None, 0o555)
        conf = W / "vsftpd.conf"
        conf.write_text(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=%s\nbackground=NO\nanonymous_enable=YES\n"
            "no_anon_password=YES\nanon_root=%s\nlocal_enable=NO\nwrite_enable=NO\n"
            "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\n"
            "force_anon_data_ssl=YES\nrsa_cert_file=%s\nrsa_private_key_file=%s\n"
            "secure_chroot_dir=/var/run/vsftpd/empty\npasv_min_port=40000\npasv_max_port=40010\n"
            "seccomp_sandbox=NO\nrequire_ssl_reuse=YES\nssl_ciphers=HIGH\n"
            % (S4, root, rig.PKI / "fullchain.pem", rig.PKI / "leaf.key"))
        return [rig.spawn(SERVER_NS, "vsftpd", conf)]

    starttls_capture(name, start, 21, [
        s_client_starttls("ftp", 21, b"USER anonymous\r\nQUIT\r\n", ok=b"221"),
        # lftp says AUTH TLS; curl says AUTH SSL, after which tshark 4.0 does not decode TLS
        (["lftp", "-c", "set ssl:ca-file %s; set ftp:ssl-force true; set ftp:ssl-protect-data "
          "true; open ftp://anonymous:x@%s; ls; bye" % (rig.PKI / "root.pem", S4)],
         b"", (), b""),
    ], "vsftpd 3.0 (Debian): openssl s_client -starttls ftp -tls1_2 (AUTH TLS) and lftp "
       "(ftp:ssl-force, AUTH TLS, PROT P) listing the anonymous root; the control channel only "
       "(the TLS data channel on 40000-40010 is not in the capture filter)")


def starttls_ldap(name) -> None:
    def start():
        db = _fresh(W / "ldapdb", "openldap", 0o700)
        conf = W / "slapd.conf"
        conf.write_text(
            "include /etc/ldap/schema/core.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            "pidfile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n"
            "database mdb\nsuffix \"dc=rw,dc=test\"\nrootdn \"cn=admin,dc=rw,dc=test\"\n"
            "rootpw rw\ndirectory %s\n"
            % (W / "slapd.pid", rig.PKI / "fullchain.pem", rig.PKI / "leaf.key", db))
        return [rig.spawn(SERVER_NS, "slapd", "-d", "0", "-f", conf, "-h", "ldap://%s/" % S4)]

    starttls_capture(name, start, 389, [
        (["ldapsearch", "-ZZ", "-H", "ldap://%s/" % S4, "-x", "-b", "", "-s", "base",
          "namingContexts"], b"", ("LDAPTLS_CACERT=%s" % (rig.PKI / "root.pem"),
                                   "LDAPTLS_REQCERT=demand"), b"dc=rw,dc=test"),
        s_client_starttls("ldap", 389, b""),
    ], "OpenLDAP slapd 2.5 (Debian): ldapsearch -ZZ (StartTLS extended operation, then a "
       "base search) and openssl s_client -starttls ldap -tls1_2")


def starttls_xmpp(name) -> None:
    def start():
        data = _fresh(W / "prosody", "prosody", 0o750)
        conf = W / "prosody.cfg.lua"
        conf.write_text(
            'pidfile = "%s/prosody.pid"\ndata_path = "%s"\ninterfaces = { "%s" }\n'
            'c2s_ports = { 5222 }\ns2s_ports = { }\nc2s_require_encryption = true\n'
            'modules_enabled = { "tls"; "saslauth"; "disco"; "ping" }\n'
            'log = { info = "%s/prosody.log" }\ncertificates = "%s"\n'
            'VirtualHost "rw.test"\n  ssl = { certificate = "%s"; key = "%s" }\n'
            % (data, data, S4, data, rig.PKI, rig.PKI / "fullchain.pem", rig.PKI / "leaf.key"))
        return [rig.spawn(SERVER_NS, "runuser", "-u", "prosody", "--", "prosody", "-F",
                          "--config", conf)]

    starttls_capture(name, start, 5222, [
        s_client_starttls("xmpp", 5222, b"", extra=("-xmpphost", "rw.test")),
    ], "Prosody 0.12 (Debian), c2s_require_encryption: openssl s_client -starttls xmpp -tls1_2 "
       "-xmpphost rw.test")


# ---------------------------------------------------------------------------------------------
# server data after the client's RST / FIN; a malformed ClientHello
# ---------------------------------------------------------------------------------------------

CLIENTS = Path(__file__).resolve().parent / "clients.py"


def late_after(name: str, how: str) -> None:
    """s_server with an eight-certificate RSA-4096 chain (~11 KB) behind a 100 kbit/s token
    bucket on its egress (this kernel has no netem; tbf queues the flight and lets it out at
    ~12 KB/s, so it takes ~1 s); the client sends OpenSSL's ClientHello (TLS 1.2 at most, so
    the chain travels in clear) and 100 ms later aborts (RST) or half-closes (FIN): the chain
    reaches the client side after the client's RST/FIN.  Captured on the client's veth."""
    rig.setup()
    rig.ns_sh(SERVER_NS, "tc", "qdisc", "add", "dev", S_IF, "root", "tbf", "rate", "100kbit",
              "burst", "1600", "limit", "200000")
    srv = rig.s_server(SERVER_NS, big=True)
    cap = rig.Capture(CLIENT_NS, C_IF, OUT / (name + ".pcap"), "tcp port 443")
    for _ in range(2):
        rig.ns_sh(CLIENT_NS, rig.python(), CLIENTS, how, S4, 443, timeout=20)
        time.sleep(2.0)
    cap.close()
    rig.stop(srv)
    record(name, "real",
           "s_server (eight-certificate RSA-4096 chain) behind tc tbf rate 100kbit; a Python "
           "client sends OpenSSL's own ClientHello (ssl over a memory BIO, TLS <= 1.2) and "
           "100 ms later %s; two connections; captured on the client's veth, where the "
           "ServerHello..ServerHelloDone flight arrives after the client's %s"
           % ("resets (SO_LINGER 0)" if how == "rst" else "half-closes (shutdown SHUT_WR)",
              how.upper()))


def malformed_hello(name: str, silent: bool) -> None:
    rig.setup()
    if silent:
        srv = rig.spawn(SERVER_NS, rig.python(), CLIENTS, "silent", S4, 443,
                        stdout=rig.subprocess.PIPE)
        if srv.stdout.readline().strip() != b"ready":
            raise RuntimeError("silent server did not start")
    else:
        srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"), "tcp port 443")
    rig.ns_sh(CLIENT_NS, rig.python(), CLIENTS, "malformed", S4, 443, timeout=20)
    time.sleep(0.5)
    cap.close()
    rig.stop(srv)
    record(name, "real",
           "OpenSSL's ClientHello with its cipher_suites length set to 0xfff0 (past the end "
           "of the message), sent by a Python socket that closes (FIN) a second later, to %s"
           % ("a TCP server that reads and never answers (no server data at all)" if silent
              else "openssl s_server, which answers with its own alert and closes"))


# ---------------------------------------------------------------------------------------------
# JA4 edge cases from real clients
# ---------------------------------------------------------------------------------------------

def ja4_clients(name: str) -> None:
    """Real clients' ClientHellos for the JA4 cases a real client can make: no
    signature_algorithms (OpenSSL and curl at TLS 1.0 / 1.1 send none), no SNI, a one-character
    ALPN and non-ASCII ALPN values (the spec's hex-rule examples), against s_server at
    security level 0 (so TLS 1.0 completes)."""
    rig.setup()
    srv = rig.s_server(SERVER_NS, extra=("-cipher", "DEFAULT@SECLEVEL=0"))
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"), "tcp port 443")
    legacy = ("-cipher", "DEFAULT@SECLEVEL=0")
    runs = [("-tls1",) + legacy, ("-tls1_1",) + legacy, ("-noservername",),
            ("-alpn", "x"), ("-alpn", b"\xab\xcd"), ("-alpn", b"0\xab"),
            ("-alpn", b"0\xab\xcd1"), ("-alpn", "h2-,h2")]
    for extra in runs:
        r = rig.s_client(CLIENT_NS, S4, extra=extra)
        if b"200 ok" not in r.stdout.lower():
            raise RuntimeError("s_client %r: %r" % (extra, (r.stdout + r.stderr)[-800:]))
    r = rig.curl(CLIENT_NS, S4, extra=("--tlsv1.0", "--tls-max", "1.0", "--ciphers",
                                       "DEFAULT@SECLEVEL=0"))
    if r.stdout.decode().strip() != "200":
        raise RuntimeError("curl TLS 1.0: %r" % r.stderr[-500:])
    cap.close()
    rig.stop(srv)
    record(name, "real",
           "openssl s_client to s_server (DEFAULT@SECLEVEL=0): -tls1 and -tls1_1 (no "
           "signature_algorithms), -noservername, -alpn x, -alpn 0xabcd, 0x30ab, 0x30abcd31 "
           "(raw bytes), -alpn 'h2-,h2'; curl --tls-max 1.0 (no signature_algorithms)")


def ja4_chromium(name: str) -> None:
    """Debian's Chromium (BoringSSL: GREASE in suites, extensions, groups and versions, ECH
    GREASE, ALPS), headless, loading s_server's page twice."""
    rig.setup()
    srv = rig.s_server(SERVER_NS)
    cap = rig.Capture(SERVER_NS, S_IF, OUT / (name + ".pcap"), "tcp port 443")
    profile = W / "chromium"
    for _ in range(2):
        _fresh(profile)
        r = rig.ns_sh(CLIENT_NS, "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                      "--no-first-run", "--user-data-dir=%s" % profile,
                      "--host-resolver-rules=MAP rw.test %s" % S4,
                      "--ignore-certificate-errors", "--dump-dom", "https://rw.test/",
                      timeout=60, check=False)
        if b"s_server" not in r.stdout:
            raise RuntimeError("chromium: %r" % (r.stdout[-300:] + r.stderr[-800:]))
        time.sleep(0.5)
    cap.close()
    rig.stop(srv)
    record(name, "real", "Chromium (Debian) headless --dump-dom https://rw.test/ to s_server, "
           "twice: BoringSSL hellos with GREASE values in suites, extensions, groups and "
           "supported_versions")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

CAPTURES = {
    "encap-vxlan": encap_vxlan,
    "encap-erspan": encap_erspan,
    "starttls-postgres": starttls_postgres,
    "starttls-mysql": starttls_mysql,
    "starttls-mysql-coalesced": starttls_mysql_coalesced,
    "starttls-smtp": starttls_smtp,
    "starttls-imap": starttls_imap,
    "starttls-pop3": starttls_pop3,
    "starttls-ftp": starttls_ftp,
    "starttls-ldap": starttls_ldap,
    "starttls-xmpp": starttls_xmpp,
    "late-after-rst": lambda name: late_after(name, "rst"),
    "late-after-fin": lambda name: late_after(name, "fin"),
    "malformed-hello-silent": lambda name: malformed_hello(name, True),
    "malformed-hello-s_server": lambda name: malformed_hello(name, False),
    "ja4-clients": ja4_clients,
    "ja4-chromium": ja4_chromium,
}
for _mode in TUND_MODES:
    CAPTURES["encap-%s" % _mode] = (lambda m: (lambda name: encap_tund(name, m)))(_mode)


def main(argv) -> None:
    names = argv or sorted(CAPTURES)
    rig.make_pki()
    OUT.mkdir(parents=True, exist_ok=True)
    if MANIFEST.exists():
        MADE.update(json.loads(MANIFEST.read_text()))
    try:
        for name in names:
            print("...", name, flush=True)
            CAPTURES[name](name)
            MANIFEST.write_text(json.dumps(MADE, indent=1, sort_keys=True) + "\n")
    finally:
        rig.teardown()


if __name__ == "__main__":
    main(sys.argv[1:])
