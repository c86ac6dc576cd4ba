"""TLS 1.3 record sizes (analyzer/records.py) and the server chain memory (analyzer/memory.py) with the rules
that use them: a certificate rejected after the client's flight, a declined PSK, and the exact cause of an
encrypted failure from the chain the same server showed in clear earlier."""

from __future__ import annotations

import pytest

from analyzer import records as R
from analyzer.config import DiagnoseConfig, TrustStore
from analyzer.engine import Engine
from analyzer.memory import ChainMemory
from tests.support.pki import T0, make_pki
from tests.support.summaries import alert, ders, make_summary

A384 = "TLS_AES_256_GCM_SHA384"
A128 = "TLS_AES_128_GCM_SHA256"
#: an OpenSSL server's flight with a CertificateRequest (EE, CR, Certificate, CertificateVerify, Finished)
FLIGHT_CR = [23, 131, 1871, 281, 69]
FLIGHT = [23, 1871, 281, 69]


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def engine(pki=None, **kw) -> Engine:
    stores = {"default": TrustStore("roots.pem", (pki.root.cert,))} if pki else {}
    return Engine(DiagnoseConfig(truststores=stores, **kw))


def tls13(**kw) -> dict:
    base = dict(version="TLSv1.3", cipher=A384, history="CsiI", client_versions=["TLSv1.3"],
                close={"fin": ["server", "client"], "rst": []})
    base.update(kw)
    return make_summary(**base)


def cert_record(chain, pad: int = 0) -> int:
    """The TLS 1.3 Certificate record carrying ``chain`` (RFC 8446 4.4.2, no extensions), AES-GCM."""
    return 4 + 1 + 3 + sum(3 + len(c.der) + 2 for c in chain) + 1 + 16 + pad


def flight(chain, pad: int = 0) -> list[int]:
    """An OpenSSL-like server flight (EE, Certificate, CertificateVerify, Finished) for ``chain``."""
    return [23 + pad, cert_record(chain, pad), 281 + pad, 69 + pad]


def failures(ds: list[dict]) -> list[dict]:
    return [d for d in ds if d["severity"] == "failure"]


# ------------------------------------------------------------------------------------------ record sizes


def test_sizes_per_suite_and_padding():
    assert R.finished_len(A384) == 69 and R.finished_len(A128) == 53
    assert R.alert_len(A384) == 19 and R.alert_len(A384, 16) == 35
    assert R.empty_certificate_len(A128) == 25 and R.empty_certificate_len(A128, 16) == 41
    assert R.finished_len("TLS_AES_128_CCM_8_SHA256") == 45
    assert R.padding([41, 85, 75], A384) == (1, 16) and R.padding([2794, 281, 69], A384) == (2, 0)
    assert R.client_sent_empty_certificate([25, 69], A384) and R.client_sent_empty_certificate([41, 85], A384)
    assert not R.client_sent_empty_certificate([41, 69], A384)      # unpadded Finished: 41 is not its empty cert
    assert R.client_sent_certificate([1871, 297, 85], A384) and not R.client_sent_certificate([69, 61], A384)


@pytest.mark.parametrize("ce, se, alerted, want", [
    ([25, 69], FLIGHT_CR + [19], False, True),                 # OpenSSL, no client certificate
    ([41, 85, 75], FLIGHT_CR + [19], False, True),             # JSSE: records 16 bytes longer, request after
    ([2794, 281, 69, 35], FLIGHT_CR + [19], False, True),      # an 18-byte request from an unpadded client
    ([1871, 297], [23, 62, 1871, 281, 69, 19], False, True),   # JSSE, answered before its Finished was sent
    ([25, 69], FLIGHT_CR + [250, 250], False, False),          # tickets: accepted
    ([1871, 297, 85, 77], FLIGHT_CR + [1194], False, False),   # data: accepted
    ([25, 69, 19], FLIGHT_CR + [19], True, False),             # the client closed (close_notify) first
    ([85, 35, 35], FLIGHT + [19], False, False),               # JSSE close_notify (35) after its Finished
    ([53], [32, 397, 97, 53, 19], False, False),               # no client Certificate: nothing to reject
    ([25, 69], FLIGHT_CR + [19] * 3, False, False),            # list cut at 8? no: more than one record after
])
def test_server_rejected_flight(ce, se, alerted, want):
    assert R.server_rejected_flight(ce, se, A384, alerted) is want


def test_client_closed_without_data():
    assert R.client_closed_without_data([69, 19], A384)             # curl: Finished, close_notify
    assert R.client_closed_without_data([85, 35, 35], A384)         # JSSE
    assert not R.client_closed_without_data([69, 61], A384)         # a request
    assert not R.client_closed_without_data([69], A384)             # nothing after the Finished


# ------------------------------------------------------------------------------------------ the rules


def test_expired_client_certificate_rejected_after_the_flight(pki):
    """Python/JSSE with an expired client certificate: full flight, the server's one alert-sized record, its
    FIN -- reported as a success before issue 12."""
    for ce in ([1855, 281, 69, 59], [1871, 297, 85, 75], [1871, 297]):
        (d,) = failures(engine(pki).diagnose(tls13(client_encrypted=ce, server_encrypted=FLIGHT_CR + [19],
                                                   encrypted_alerts=[{"from": "server", "length": 19}])))
        assert (d["cause"], d["rejected_by"], d["rule"]) == ("encrypted_failure", "server", "TLS13-ENCRYPTED-FAILURE")
        assert "rejected the client's certificate" in d["explanation"]
        assert "KeyStore" in d["remediation"] or "truststore" in d["remediation"]


def test_certless_client_dropped_without_an_alert(pki):
    """An empty Certificate, then the server closes right after its own flight without any record more."""
    s = tls13(client_encrypted=[25, 69], server_encrypted=FLIGHT_CR, close={"fin": ["server", "client"], "rst": []})
    (d,) = failures(engine(pki).diagnose(s))
    assert (d["cause"], d["rejected_by"]) == ("client_certificate_missing", "server")
    assert "closed the connection right after its own flight" in d["explanation"]
    # the client closing first there is no rejection of it
    assert failures(engine(pki).diagnose(dict(s, close={"fin": ["client", "server"], "rst": []}))) == []


def test_declined_psk_is_keyed_on_the_server_hello(pki):
    """The client offered a PSK, the server declined it (full handshake, new certificate) and the client
    aborted with an encrypted alert (JSSE's 35 bytes): a failure.  An accepted PSK is not judged so."""
    s = tls13(client_psk=True, client_encrypted=[35], server_encrypted=FLIGHT, close={"fin": ["client", "server"],
                                                                                      "rst": []})
    (d,) = failures(engine(pki).diagnose(s))
    assert (d["cause"], d["rejected_by"]) == ("encrypted_failure", "client")
    assert failures(engine(pki).diagnose(dict(s, resumed=True, server_encrypted=[23, 69]))) == []


def _tls12_seen(pki, chain, t, **kw) -> tuple[dict, dict]:
    s = make_summary(chain=chain, start=t, established=False, outcome="alert",
                     alerts=[alert("client", "bad_certificate", "server_hello_done")], history="CsxknGiIa", **kw)
    return s, ders(chain)


def test_memory_names_the_exact_cause_with_its_age(pki):
    """A TLS 1.2 client rejected the server's expired chain (in clear); 42 s later a JSSE TLS 1.3 client
    aborts on the same server: expired_certificate, with the age, the earlier connection and the record-size
    check in the evidence, and the fix naming the certificate."""
    e = engine(pki)
    t0 = T0.timestamp()
    s12, c12 = _tls12_seen(pki, [pki.expired, pki.inter], t0)
    assert failures(e.diagnose(s12, c12))[0]["cause"] == "expired_certificate"
    size = cert_record([pki.expired, pki.inter])
    s13 = tls13(start=t0 + 42, client_encrypted=[35], server_encrypted=flight([pki.expired, pki.inter], 16),
                close={"fin": ["client", "server"], "rst": []})
    (d,) = failures(e.diagnose(s13))
    assert (d["cause"], d["rule"], d["rejected_by"], d["confidence"]) == (
        "expired_certificate", "TLS13-REMEMBERED-EXPIRED", "client", "medium")
    mem = d["evidence"]["remembered_chain"]
    assert mem["age_s"] == 42 and mem["seen_in"]["connection"] == s12["id"] and mem["used"]
    assert mem["certificate_record"] == {"bytes": size + 16, "chain_bytes": size + 16, "matches": True}
    assert "42 s earlier" in d["explanation"] and "exactly that chain's size" in d["explanation"]
    assert "CN=old.example.com" in d["remediation"] and "?" not in d["remediation"]


def test_memory_is_causal_and_per_name(pki):
    e = engine(pki)
    t0 = T0.timestamp()
    fl = flight([pki.expired, pki.inter])
    s13 = tls13(start=t0, client_encrypted=[19], server_encrypted=fl)
    assert failures(e.diagnose(s13))[0]["cause"] == "encrypted_failure"         # nothing seen yet
    e.diagnose(*_tls12_seen(pki, [pki.expired, pki.inter], t0 + 10))
    # the same server under another name: not this chain
    other = tls13(start=t0 + 20, sni="other.example.com", client_encrypted=[19], server_encrypted=fl)
    assert failures(e.diagnose(other))[0]["cause"] == "encrypted_failure"
    later = tls13(start=t0 + 20, client_encrypted=[19], server_encrypted=fl)
    assert failures(e.diagnose(later))[0]["cause"] == "expired_certificate"


def test_memory_not_used_when_the_record_says_another_chain(pki):
    """The chain remembered is leaf + intermediate; this connection's Certificate record is far smaller: the
    server serves something else now."""
    e = engine(pki)
    t0 = T0.timestamp()
    e.diagnose(*_tls12_seen(pki, [pki.expired, pki.inter], t0))
    (d,) = failures(e.diagnose(tls13(start=t0 + 5, client_encrypted=[19], server_encrypted=[23, 700, 281, 69])))
    assert d["cause"] == "encrypted_failure" and d["evidence"]["remembered_chain"]["used"] is False
    assert "does not have that chain's size" in d["explanation"]


def test_memory_not_used_after_a_later_success(pki):
    """Rotation fixed: the expired chain was seen, then a full TLS 1.3 handshake to the server succeeded (the
    client checked whatever it serves now); a later abort is not blamed on the old chain."""
    e = engine(pki)
    t0 = T0.timestamp()
    fl = flight([pki.expired, pki.inter])
    e.diagnose(*_tls12_seen(pki, [pki.expired, pki.inter], t0))
    ok = tls13(start=t0 + 10, client_encrypted=[69, 61], server_encrypted=fl + [250, 250],
               close={"fin": [], "rst": []})
    assert e.diagnose(ok) == []
    (d,) = failures(e.diagnose(tls13(start=t0 + 20, client_encrypted=[19], server_encrypted=fl)))
    assert d["cause"] == "encrypted_failure" and "succeeded since" in d["explanation"]
    # a resumption checks no certificate: it contradicts nothing
    e2 = engine(pki)
    e2.diagnose(*_tls12_seen(pki, [pki.expired, pki.inter], t0))
    e2.diagnose(dict(ok, resumed=True, client_psk=True, server_encrypted=[23, 69, 250]))
    assert failures(e2.diagnose(tls13(start=t0 + 20, client_encrypted=[19], server_encrypted=fl)))[0][
        "cause"] == "expired_certificate"


def test_tls13_close_after_handshake_from_memory(pki):
    """curl on a wrong name over TLS 1.3: handshake done, tickets received, close_notify, no request -- a
    health check looks the same; the chain this server showed in clear for this name tells them apart."""
    e = engine(pki)
    t0 = T0.timestamp()
    hc = dict(client_encrypted=[69, 19], server_encrypted=flight([pki.wrong_name, pki.inter]) + [250, 250, 19],
              encrypted_alerts=[{"from": "client", "length": 19}, {"from": "server", "length": 19}],
              close={"fin": ["client", "server"], "rst": []})
    assert e.diagnose(tls13(start=t0, **hc)) == []                      # nothing known: a health check
    e.diagnose(*_tls12_seen(pki, [pki.wrong_name, pki.inter], t0 + 1))
    (d,) = failures(e.diagnose(tls13(start=t0 + 2, **hc)))
    assert (d["cause"], d["rule"], d["rejected_by"]) == ("hostname_mismatch", "TLS13-CLOSE-AFTER-HANDSHAKE-HOSTNAME",
                                                         "client")
    # a good chain remembered: health checks stay successes
    e2 = engine(pki)
    e2.diagnose(make_summary(chain=[pki.leaf, pki.inter], start=t0), ders([pki.leaf, pki.inter]))
    good = dict(hc, server_encrypted=flight([pki.leaf, pki.inter]) + [250, 250, 19])
    assert e2.diagnose(tls13(start=t0 + 2, **good)) == []


def test_cleartext_tls13_alert_judged_on_the_remembered_chain(pki):
    """OpenSSL clients send a cleartext unknown_ca over TLS 1.3: with the leaf-only chain seen before, the
    cause is the missing intermediate, not an untrusted root."""
    e = engine(pki)
    t0 = T0.timestamp()
    s12, c12 = _tls12_seen(pki, [pki.leaf], t0)
    assert failures(e.diagnose(s12, c12))[0]["cause"] == "incomplete_chain"
    s13 = tls13(start=t0 + 3, established=False, outcome="alert", client_encrypted=[],
                server_encrypted=flight([pki.leaf]),
                alerts=[alert("client", "unknown_ca", "server_hello")])
    (d,) = failures(e.diagnose(s13))
    assert (d["cause"], d["rule"]) == ("incomplete_chain", "TLS-CERT-INCOMPLETE-CHAIN")
    assert "sent in clear 3 s earlier" in d["explanation"] and d["confidence"] == "medium"
    # an alert that names another problem keeps its own cause
    s13b = dict(s13, alerts=[alert("client", "certificate_expired", "server_hello")])
    assert failures(e.diagnose(s13b))[0]["cause"] == "expired_certificate"


def test_chain_memory_is_bounded():
    m = ChainMemory(max_servers=3, max_chains=2)
    p = make_pki()
    for i in range(5):
        m.remember(f"10.0.0.{i}:443", "a.example", [p.leaf], None, float(i))
    assert len(m) == 3 and m.evicted == 2 and not m.has("10.0.0.0:443", "a.example")
    for i, c in enumerate((p.leaf, p.expired, p.wrong_name)):
        m.remember("10.0.0.4:443", "A.Example", [c], None, 10.0 + i)
    chains = dict(m)[("10.0.0.4:443", "a.example")]
    assert [c.chain[0].sha256 for c in chains] == [p.expired.sha256, p.wrong_name.sha256]
    seen, contradicted = m.recall("10.0.0.4:443", "a.example", 20.0)
    assert seen.chain[0].sha256 == p.wrong_name.sha256 and contradicted is None
    assert m.recall("10.0.0.4:443", "a.example", 5.0) is None     # nothing seen that early


def test_remembered_chain_without_a_problem_is_said_not_blamed(pki):
    """The server showed a good chain in clear; a TLS 1.3 client aborting on it stays encrypted_failure (the
    client's own truststore or a name the chain does cover -- the wire cannot say), and the explanation says
    what the memory showed."""
    e = engine(pki)
    t0 = T0.timestamp()
    e.diagnose(make_summary(chain=[pki.leaf, pki.inter], start=t0), ders([pki.leaf, pki.inter]))
    (d,) = failures(e.diagnose(tls13(start=t0 + 7, client_encrypted=[19],
                                     server_encrypted=flight([pki.leaf, pki.inter]))))
    assert d["cause"] == "encrypted_failure" and d["rejected_by"] == "client"
    assert "7 s earlier" in d["explanation"] and "has no problem a client would reject" in d["explanation"]
    assert d["evidence"]["remembered_chain"]["used"] is True
