"""Certificate checks against a generated PKI: each problem named, chain judged per connection."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest
from cryptography import x509

from analyzer import certs as C
from analyzer.config import TrustStore
from tests.support.pki import T0, issue, make_pki
from tests.support.summaries import ders


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def check(chain, *, trust=None, when=T0, hostname="api.example.com", side="server", checker=None, facts_only=False):
    ck = checker or C.CertChecker({"default": TrustStore("test-roots", tuple(trust))} if trust else None)
    return ck.check([c.facts for c in chain], {} if facts_only else ders(chain), side=side, when=when,
                    hostname=hostname, hostname_source="sni" if hostname else None, direction="southbound")


def codes(report):
    return sorted(p.code for p in report.problems)


def test_valid_chain_with_truststore_is_clean(pki):
    r = check([pki.leaf, pki.inter], trust=[pki.root.cert])
    assert codes(r) == []
    assert r.verifier == "ok"
    assert r.anchored


def test_expired_leaf_named_at_capture_time(pki):
    r = check([pki.expired, pki.inter], trust=[pki.root.cert], hostname="old.example.com")
    assert codes(r) == [C.EXPIRED]
    assert r.problems[0].index == 0
    # the same chain checked at a time before its expiry is fine
    r2 = check([pki.expired, pki.inter], trust=[pki.root.cert], hostname="old.example.com",
               when=T0 - dt.timedelta(days=100))
    assert C.EXPIRED not in codes(r2)


def test_every_certificate_in_chain_is_checked(pki):
    old_inter = issue("Old Intermediate", pki.root, ca=True, not_before=T0 - dt.timedelta(days=900),
                      not_after=T0 - dt.timedelta(days=1))
    leaf = issue("api.example.com", old_inter, sans=["api.example.com"])
    r = check([leaf, old_inter], trust=[pki.root.cert])
    assert [(p.code, p.index) for p in r.problems if p.code == C.EXPIRED] == [(C.EXPIRED, 1)]


def test_not_yet_valid(pki):
    r = check([pki.not_yet_valid, pki.inter], trust=[pki.root.cert], hostname="new.example.com")
    assert codes(r) == [C.NOT_YET_VALID]


def test_expiring_soon_is_a_separate_code(pki):
    soon = issue("api.example.com", pki.inter, sans=["api.example.com"], not_after=T0 + dt.timedelta(days=5))
    r = check([soon, pki.inter], trust=[pki.root.cert])
    assert codes(r) == [C.EXPIRING_SOON]
    assert r.failure_problems() == []


def test_hostname_mismatch(pki):
    r = check([pki.wrong_name, pki.inter], trust=[pki.root.cert])
    assert codes(r) == [C.HOSTNAME_MISMATCH]
    assert "something.example.com" in r.problems[0].detail


@pytest.mark.parametrize("host,ok", [
    ("api.example.com", True), ("x.api.example.com", True), ("X.API.Example.COM.", True),
    ("a.b.api.example.com", False), ("example.com", False), ("apix.example.com", False),
])
def test_wildcard_san(pki, host, ok):
    r = check([pki.leaf, pki.inter], trust=[pki.root.cert], hostname=host)
    assert (C.HOSTNAME_MISMATCH not in codes(r)) is ok


@pytest.mark.parametrize("pattern,host,ok", [
    ("*.example.com", "foo.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "foo.bar.example.com", False),
    ("*.com", "example.com", False),
    ("f*.example.com", "foo.example.com", False),
    ("foo.*.com", "foo.example.com", False),
    ("*.10.0.0", "1.10.0.0", False),
    ("Foo.Example.com", "foo.example.com.", True),
])
def test_wildcard_rules(pattern, host, ok):
    assert C.wildcard_match(pattern, host) is ok


@pytest.mark.parametrize("host", [
    "10.0.0.1", "1.2.3.4", "1password.com", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "0x7f.0.0.1",
    "::1", "fe80::1", "fe80::1%eth0", "abcd::", "::ffff:1.2.3.4", "2001:db8::1:0", "face::b00c", "a:b",
    "abc", "dead.beef", "", "example.com", "[::1]", "1e100.net", "9.example",
])
def test_ip_literal_is_what_ipaddress_reads(host):
    # (tried only where ipaddress can read an address: the same answer for every host name)
    try:
        want = ipaddress.ip_address(host)
    except ValueError:
        want = None
    assert C._ip_literal(host) == want


def test_cn_fallback_only_without_san(pki):
    no_san = issue("legacy.example.com", pki.inter)          # no SAN at all
    r = check([no_san, pki.inter], trust=[pki.root.cert], hostname="legacy.example.com")
    assert C.HOSTNAME_MISMATCH not in codes(r)
    assert r.hostname_how.startswith("CN")
    # with a SAN the CN is ignored
    both = issue("cn-only.example.com", pki.inter, sans=["other.example.com"])
    r2 = check([both, pki.inter], trust=[pki.root.cert], hostname="cn-only.example.com")
    assert C.HOSTNAME_MISMATCH in codes(r2)


def test_ip_san(pki):
    leaf = issue("10.2.0.9", pki.inter, sans=["10.2.0.9"])
    assert C.HOSTNAME_MISMATCH not in codes(check([leaf, pki.inter], trust=[pki.root.cert], hostname="10.2.0.9"))
    assert C.HOSTNAME_MISMATCH in codes(check([leaf, pki.inter], trust=[pki.root.cert], hostname="10.2.0.10"))


def test_missing_intermediate_with_truststore(pki):
    r = check([pki.leaf], trust=[pki.root.cert])
    assert codes(r) == [C.MISSING_ISSUER]
    assert r.verifier != "ok"


def test_missing_intermediate_without_truststore_says_what_a_truststore_adds(pki):
    r = check([pki.leaf])
    assert codes(r) == [C.MISSING_ISSUER]
    assert any("truststore" in n for n in r.notes)


def test_chain_completeness_never_uses_intermediates_seen_elsewhere(pki):
    ck = C.CertChecker({"default": TrustStore("roots", (pki.root.cert,))})
    assert codes(check([pki.leaf, pki.inter], checker=ck)) == []
    # the intermediate was seen on another connection; this one sent the leaf alone
    assert codes(check([pki.leaf], checker=ck)) == [C.MISSING_ISSUER]


def test_complete_chain_without_truststore_is_clean(pki):
    r = check([pki.leaf, pki.inter])
    assert codes(r) == []
    assert r.verifier is None


def test_self_signed(pki):
    r = check([pki.self_signed], hostname="self.example.com")
    assert codes(r) == [C.SELF_SIGNED]
    r2 = check([pki.self_signed], trust=[pki.root.cert], hostname="self.example.com")
    assert codes(r2) == [C.SELF_SIGNED]
    # trusted explicitly -> fine
    r3 = check([pki.self_signed], trust=[pki.self_signed.cert], hostname="self.example.com")
    assert codes(r3) == []


def test_untrusted_root_behind_sent_intermediate(pki):
    other_inter = issue("Other Intermediate", pki.other_root, ca=True)
    leaf = issue("api.example.com", other_inter, sans=["api.example.com"])
    r = check([leaf, other_inter], trust=[pki.root.cert])
    assert codes(r) == [C.UNTRUSTED_ROOT]
    r2 = check([leaf, other_inter, pki.other_root], trust=[pki.root.cert])
    assert codes(r2) == [C.UNTRUSTED_ROOT]


def test_issuer_subject_mismatch_inside_sent_chain(pki):
    # an "intermediate" with the right name but a different key (e.g. the old one before a re-key)
    impostor = issue("Test Intermediate CA", pki.root, ca=True)
    r = check([pki.leaf, impostor], trust=[pki.root.cert])
    assert C.ISSUER_MISMATCH in codes(r)
    # and a chain whose second certificate is unrelated
    r2 = check([pki.leaf, pki.other_root], trust=[pki.root.cert])
    assert C.ISSUER_MISMATCH in codes(r2)


@pytest.mark.parametrize("bits, e", [(16384, 65537), (4096, (1 << 64) - 59), (8192, 65539),
                                     (4096, 0)])
def test_an_issuer_key_too_costly_to_use_is_not_used(pki, bits, e):
    """An "intermediate" with the right name and a key no CA has (RSA of 16384 bits or a 64-bit
    exponent, DSA of 4096 bits): its key is not used to check the leaf's signature -- fifteen of them in a chain
    cost 68 ms of signature checks for each connection that sent them -- so the names decide
    (with a usable key of the wrong pair, the test above finds the mismatch)."""
    import random

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa
    n = random.Random(bits).getrandbits(bits) | (1 << (bits - 1)) | 1
    if e:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    else:                           # DSA: a 10,000-bit p cost 10.5 ms a check
        key = dsa.DSAPublicNumbers(5, dsa.DSAParameterNumbers(n, (1 << 255) + 1, 2)).public_key()
    cert = (x509.CertificateBuilder().subject_name(pki.inter.cert.subject)
            .issuer_name(pki.root.cert.subject).public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(T0 - dt.timedelta(days=30)).not_valid_after(T0 + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(pki.root.key, hashes.SHA256()))
    assert C._signed_by(pki.leaf.cert, cert) is True
    assert C._signed_by(pki.leaf.cert, pki.other_root.cert) is False     # a usable key
    assert C._costly(key)


def test_client_chain_uses_client_verifier(pki):
    r = check([pki.client, pki.inter], trust=[pki.root.cert], hostname=None, side="client")
    assert codes(r) == []
    assert r.verifier == "ok"
    r2 = check([pki.client_expired, pki.inter], trust=[pki.root.cert], hostname=None, side="client")
    assert codes(r2) == [C.EXPIRED]


def test_facts_without_der_still_give_dates_and_names(pki):
    r = check([pki.expired, pki.inter], hostname="api.example.com", facts_only=True)
    assert C.EXPIRED in codes(r) and C.HOSTNAME_MISMATCH in codes(r)


def test_unparseable_certificate(pki):
    ck = C.CertChecker()
    r = ck.check([{"sha256": "00" * 32}], {"00" * 32: b"\x30\x03\x02\x01\x00"}, side="server", when=T0,
                 hostname="x", hostname_source="sni", direction="unknown")
    assert codes(r) == [C.UNPARSEABLE]


def _mutated(der: bytes, pattern: bytes, at: int, value: int) -> bytes:
    i = der.index(pattern)
    out = bytearray(der)
    out[i + at] = value
    return bytes(out)


#: one byte of a certificate changed the ways cryptography fails on other than with ValueError
#: (found by mutating captured certificates): a version field of 28, a name's string tag 0xfa
#: (KeyError inside cryptography), the AuthorityKeyIdentifier's OID made SubjectKeyIdentifier's
#: (the certificate then has that extension twice)
_BAD_DER = {
    "InvalidVersion": (b"\xa0\x03\x02\x01\x02", 4, 28),
    "KeyError": (b"\x06\x03\x55\x04\x03\x0c", 5, 0xFA),
    "DuplicateExtension": (b"\x06\x03\x55\x1d\x23", 4, 0x0E),
}


@pytest.mark.parametrize("error", sorted(_BAD_DER))
def test_a_certificate_the_parser_refuses_in_any_way_is_a_problem_not_a_crash(pki, error):
    der = _mutated(pki.leaf.der, *_BAD_DER[error])
    info = C.cert_info_from_der(der)
    assert info.cert is None and info.error.startswith("unparseable DER: " + error)
    sha = hashlib.sha256(der).hexdigest()
    facts = {"sha256": sha, "subject": "CN=api.example.com"}
    for trust in (None, [pki.root.cert]):
        ck = C.CertChecker({"default": TrustStore("test-roots", tuple(trust))} if trust else None)
        r = ck.check([facts, pki.inter.facts], {sha: der, **ders([pki.inter])}, side="server", when=T0,
                     hostname="api.example.com", hostname_source="sni", direction="southbound")
        assert codes(r)[:1] == [C.UNPARSEABLE] and r.problems[0].index == 0
        # its issuer is not blamed for a name the parser could not read
        assert C.ISSUER_MISMATCH not in codes(r)


def test_an_unparseable_intermediate_is_not_an_issuer_mismatch(pki):
    der = _mutated(pki.inter.der, *_BAD_DER["DuplicateExtension"])
    sha = hashlib.sha256(der).hexdigest()
    r = C.CertChecker().check([pki.leaf.facts, {"sha256": sha}], {**ders([pki.leaf]), sha: der},
                              side="server", when=T0, hostname="api.example.com",
                              hostname_source="sni", direction="southbound")
    assert [(p.code, p.index) for p in r.problems if p.code == C.UNPARSEABLE] == [(C.UNPARSEABLE, 1)]
    assert C.ISSUER_MISMATCH not in codes(r)


def test_an_extension_the_parser_cannot_read_leaves_the_certificate_readable(pki):
    """A SAN entry of an unknown name type (cryptography: ValueError on the extensions; OpenSSL
    reads such a certificate, and old CAs' DEFAULT-encoded basicConstraints fail the same way):
    the certificate keeps its names, dates and chain, without its extensions -- not unparseable."""
    der = bytearray(pki.leaf.der)
    at = der.index(b"\x82", der.index(b"\x06\x03\x55\x1d\x11"))     # the first dNSName's tag
    der[at] = 0x89
    info = C.cert_info_from_der(bytes(der))
    assert info.error is None and info.subject == pki.leaf.cert.subject.rfc4514_string()
    assert info.san_dns == () and info.common_names == ("api.example.com",) and not info.is_ca
    sha = hashlib.sha256(bytes(der)).hexdigest()
    r = C.CertChecker({"default": TrustStore("test-roots", (pki.root.cert,))}).check(
        [{"sha256": sha}, pki.inter.facts], {sha: bytes(der), **ders([pki.inter])}, side="server", when=T0,
        hostname="api.example.com", hostname_source="sni", direction="southbound")
    assert C.UNPARSEABLE not in codes(r)
    # the names link up; the changed byte broke the issuer's signature, which is what is said
    assert [p.detail for p in r.problems if p.code == C.ISSUER_MISMATCH] == [
        "certificate 1 has the right name (%r) but its key did not sign certificate 0"
        % pki.inter.cert.subject.rfc4514_string()]


def test_a_never_expiring_certificate_seen_near_the_end_of_time(pki):
    """notAfter 9999-12-31T23:59:59Z (RFC 5280's "no expiry") checked at a handshake dated in
    December 9999 (the schema's upper bound): an expiry warning, not an OverflowError that
    stopped the analyzer on every restart."""
    end = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    leaf = issue("api.example.com", pki.inter, sans=["api.example.com"], not_after=end)
    when = dt.datetime(9999, 12, 16, tzinfo=dt.timezone.utc)
    r = check([leaf, pki.inter], trust=[pki.root.cert], when=when)
    assert [(p.code, p.index) for p in r.problems if p.code == C.EXPIRING_SOON] == [(C.EXPIRING_SOON, 0)]
