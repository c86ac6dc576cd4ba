"""Endpoint hints (issue 13) without the kernel: the ELF reader and the accessor decoder the probes
are placed with, the summary field (shape, versioning, msgpack, JSON), the join of hints to
summaries, the capture loop's hold, and the analyzer's use of hints on real TLS 1.3 captures --
and that no hint carries more than error codes and the identifiers that map them.

The probes themselves, live: tests/test_hints_live.py.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzer.config import build_config  # noqa: E402
from analyzer.engine import Engine  # noqa: E402
from proto import hints as H  # noqa: E402
from proto.render import summary_to_json  # noqa: E402
from proto.summary import (FIELDS, JSON_FIELDS, OPTIONAL_FIELDS, SchemaError, decode_summary,  # noqa: E402
                           encode_summary)
from sensor.ebpf import elf  # noqa: E402
from sensor.ebpf import hints as probes  # noqa: E402
from sensor.ebpf.hints import HintEvent, accessor_offset, resolve_library  # noqa: E402
from sensor.hints import HintJoiner  # noqa: E402
from sensor.loop import Sensor, SensorConfig  # noqa: E402
from sensor.capture import FileCapture  # noqa: E402
from sensor.pipeline import Summarizer  # noqa: E402

HERE = Path(__file__).resolve().parent
TLS13 = HERE / "data" / "scenarios-tls13"
LIBCRYPTO = next(iter(probes.system_libraries()), None)


# ---------------------------------------------------------------------------------------------
# placing the probes: ELF symbols, DT_NEEDED, the accessors' code
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code,machine,want", [
    (bytes.fromhex("8b87b000000031ffc3"), elf.EM_X86_64, 0xB0),       # Debian 3.0: disp32, zeroed regs
    (bytes.fromhex("f30f1efa8b87ac000000c3"), elf.EM_X86_64, 0xAC),   # endbr64 first
    (bytes.fromhex("8b4778c3"), elf.EM_X86_64, 0x78),                 # disp8
    (bytes.fromhex("8b87b100000031ffc3"), elf.EM_X86_64, None),       # not 4-aligned: no int field
    (bytes.fromhex("4889f8c3"), elf.EM_X86_64, None),                 # mov rax, rdi: not a load
    (bytes.fromhex("e8000000008b87b0000000"), elf.EM_X86_64, None),   # a call first: not the accessor
    (struct.pack("<I", 0xB9400000 | (0xB0 // 4) << 10), elf.EM_AARCH64, 0xB0),
    (struct.pack("<II", 0xD503245F, 0xB9400000 | (0xAC // 4) << 10), elf.EM_AARCH64, 0xAC),  # bti c
    (struct.pack("<I", 0xB9400020 | (0xB0 // 4) << 10), elf.EM_AARCH64, None),   # ldr w0, [x1]: not ctx
    (bytes.fromhex("8b87b0000000"), 3, None),                         # i386: not read
])
def test_accessor_offset(code, machine, want):
    assert accessor_offset(code, machine) == want


@pytest.mark.skipif(LIBCRYPTO is None, reason="no system libcrypto")
def test_system_libcrypto_exports_what_is_hooked():
    e = elf.read_elf(LIBCRYPTO, probes.WANTED)
    assert {probes.VERIFY_GET, probes.VERIFY_DEPTH, probes.VERIFY_INIT} <= set(e.functions)
    assert probes.ERR_V3 in e.functions or probes.ERR_111 in e.functions
    err = accessor_offset(e.code(probes.VERIFY_GET), e.machine)
    depth = accessor_offset(e.code(probes.VERIFY_DEPTH), e.machine)
    if e.machine == elf.EM_X86_64:
        assert err is not None and depth is not None and err != depth
    # the offsets are file offsets of the functions' first bytes (what a uprobe takes)
    with open(LIBCRYPTO, "rb") as fh:
        fh.seek(e.functions[probes.VERIFY_GET])
        assert fh.read(16) == e.code(probes.VERIFY_GET)
    lib, parsed = resolve_library(LIBCRYPTO)
    assert parsed is not None and lib.reason is None


@pytest.mark.skipif(LIBCRYPTO is None, reason="no system libcrypto")
def test_libssl_resolves_to_its_libcrypto():
    libssl = os.path.join(os.path.dirname(LIBCRYPTO), os.path.basename(LIBCRYPTO).replace("crypto", "ssl"))
    if not os.path.exists(libssl):
        pytest.skip("no libssl beside %s" % LIBCRYPTO)
    lib, parsed = resolve_library(libssl)
    assert parsed is not None
    assert os.path.samefile(lib.path, LIBCRYPTO)


def test_a_library_without_the_exports_is_named_with_the_reason(tmp_path):
    libz = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                             "/lib64/libz.so.1", "/usr/lib/aarch64-linux-gnu/libz.so.1") if os.path.exists(p)), None)
    if libz is not None:
        lib, parsed = resolve_library(libz)
        assert parsed is None and "no exported OpenSSL error or verify function" in lib.reason
    text = tmp_path / "not-elf.so"
    text.write_text("hello\n" * 20)
    lib, parsed = resolve_library(str(text))
    assert parsed is None and "not an ELF file" in lib.reason
    lib, parsed = resolve_library(str(tmp_path / "missing.so"))
    assert parsed is None and "No such file" in lib.reason


# ---------------------------------------------------------------------------------------------
# the summary field
# ---------------------------------------------------------------------------------------------

def endpoint(side=1, verify=10, depth=0, errors=(134,)):
    return H.make_endpoint(side, 4242, "openssl", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", verify, depth,
                           list(errors))


def field(*eps):
    return {"v": H.HINTS_VERSION, "endpoints": list(eps)}


def test_make_endpoint_is_bounded_and_folds_repeats():
    e = H.make_endpoint(0, 1, "x" * 40, "/l" * 300, None, None, [134, 134, 407] + list(range(20)))
    assert len(e["comm"]) == H.MAX_COMM and len(e["library"]) == H.MAX_LIBRARY
    assert e["ssl_errors"][:2] == [134, 407] and len(e["ssl_errors"]) == H.MAX_ERRORS
    assert tuple(e) == H.ENDPOINT_KEYS


@pytest.mark.parametrize("value,ok", [
    (field(endpoint()), True),
    (field(endpoint(0, None, None, (1116,)), endpoint()), True),
    ({"v": 2, "anything": [1, 2, 3]}, True),                          # a newer version: kept, ignored
    ({"v": 1, "endpoints": []}, False),
    (field(*[endpoint()] * (H.MAX_ENDPOINTS + 1)), False),
    (field(dict(endpoint(), secret=b"\0" * 48)), False),             # nothing beyond ENDPOINT_KEYS
    (field(dict(endpoint(), side=2)), False),
    (field(dict(endpoint(), pid=-1)), False),
    (field(dict(endpoint(), verify_error="10")), False),
    (field(dict(endpoint(), ssl_errors=[134] * (H.MAX_ERRORS + 1))), False),
    (field(dict(endpoint(), comm="c" * 17)), False),
    ({"v": 1, "endpoints": [endpoint()], "extra": 1}, False),
    ({"endpoints": [endpoint()]}, False),
    (None, False), ([], False), ("x", False),
])
def test_field_shape(value, ok):
    assert H.check_hints(value) is ok


def raw_summaries(path):
    """``[(raw summary, [(sha256, der, facts), ...])]`` of a capture, as the sensor makes them."""
    out = []
    with FileCapture(str(path)) as cap:
        s = Summarizer(cap.linktype)
        for buf, meta in cap:
            out += s.feed(buf, meta)
        out += s.flush()
    return out


def _raw_summary():
    return raw_summaries(TLS13 / "cc13_expired_north.pcap")[0][0]


def test_absent_field_changes_nothing_and_present_round_trips():
    raw = _raw_summary()
    assert "endpoint_hints" not in raw
    plain = encode_summary(raw)
    assert 42 not in msgpack.unpackb(plain, strict_map_key=False)
    back = decode_summary(plain)
    assert "endpoint_hints" not in back and tuple(summary_to_json(back, {})) == JSON_FIELDS
    assert FIELDS["endpoint_hints"] == 42 and OPTIONAL_FIELDS == ("endpoint_hints",)
    hinted = dict(raw, endpoint_hints=field(endpoint(0, None, None, (1045, 407)), endpoint()))
    data = encode_summary(hinted)
    m = msgpack.unpackb(data, strict_map_key=False)
    assert m.pop(42) == hinted["endpoint_hints"]
    assert msgpack.packb(m, use_bin_type=True) == plain            # the field adds key 42 and nothing else
    back = decode_summary(data)
    assert back["endpoint_hints"] == hinted["endpoint_hints"]
    j = summary_to_json(back, {})
    assert tuple(j)[:-1] == JSON_FIELDS and tuple(j)[-1] == "endpoint_hints"
    assert j["endpoint_hints"] == {"version": 1, "endpoints": [
        {"side": "client", "pid": 4242, "comm": "openssl", "library": "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
         "verify": None, "errors": [{"reason": 1045, "text": "received fatal certificate_expired"},
                                    {"reason": 407, "text": "shutdown while in init"}],
         "alerts_received": ["certificate_expired"], "alerts_sent": []},
        {"side": "server", "pid": 4242, "comm": "openssl", "library": "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
         "verify": {"error": "X509_V_ERR_CERT_HAS_EXPIRED", "code": 10, "text": "certificate has expired",
                    "depth": 0},
         "errors": [{"reason": 134, "text": "certificate verify failed"}],
         "alerts_received": [], "alerts_sent": ["certificate_expired"]}]}


def test_bad_field_is_a_schema_error_and_newer_versions_are_ignored():
    raw = _raw_summary()
    m = msgpack.unpackb(encode_summary(raw), strict_map_key=False)
    for bad in (None, [], {"v": 1, "endpoints": [dict(endpoint(), key_material="00")]}):
        m[42] = bad
        with pytest.raises(SchemaError, match="endpoint_hints"):
            decode_summary(msgpack.packb(m, use_bin_type=True))
    m[42] = {"v": 7, "future": "shape"}
    back = decode_summary(msgpack.packb(m, use_bin_type=True))
    assert summary_to_json(back, {})["endpoint_hints"] == {"version": 7}
    d = Engine().diagnose(summary_to_json(back, {}), {})
    assert all(x["rule"].startswith("TLS-HINT") is False for x in d)


def test_an_old_reader_ignores_the_field():
    """An analyzer from before the field: its decoder knows no key 42 (simulated by renaming it away)."""
    raw = dict(_raw_summary(), endpoint_hints=field(endpoint()))
    m = msgpack.unpackb(encode_summary(raw), strict_map_key=False)
    m[999] = m.pop(42)                                              # a key this reader does not know
    back = decode_summary(msgpack.packb(m, use_bin_type=True))
    assert "endpoint_hints" not in back


@pytest.mark.parametrize("ep,tls13,want", [
    (endpoint(1, 10, 0), True, ["certificate_expired"]),
    (endpoint(0, 20, 0), True, ["unknown_ca"]),
    (endpoint(0, 19, 1), False, ["unknown_ca"]),
    (endpoint(0, 62, 0), True, ["bad_certificate"]),
    (endpoint(0, 23, 0), True, ["certificate_revoked"]),
    (endpoint(0, 26, 0), True, ["unsupported_certificate"]),
    (endpoint(0, 77, 0), True, ["certificate_unknown"]),             # not in OpenSSL's table
    (endpoint(1, None, None, (199,)), True, ["certificate_required"]),
    (endpoint(1, None, None, (199,)), False, ["handshake_failure"]),
    (endpoint(1, None, None, (193,)), False, ["handshake_failure"]),
    (endpoint(0, 10, 0, ()), True, []),                              # verified, not fatal: nothing sent
    (endpoint(0, None, None, (1048, 407)), True, []),               # received, not sent
])
def test_alerts_sent_as_openssl_maps_them(ep, tls13, want):
    got = [H.names.alert_description_name(a) for a in H.alerts_sent(ep, tls13)]
    assert got == want


# ---------------------------------------------------------------------------------------------
# what a hint can carry: error codes and the identifiers that map them, nothing else
# ---------------------------------------------------------------------------------------------

OBJECT = ROOT / "sensor" / "ebpf" / "hints.bpf.o"
#: the helpers the probe program may call (kernel helper ids): maps, time, ids, comm, the ring buffer, the
#: attach cookie, and reads -- of the user's memory 4 bytes at a time (the verify error and depth), of the
#: kernel's only the socket's address fields
HELPERS = {1: "map_lookup_elem", 2: "map_update_elem", 5: "ktime_get_ns", 14: "get_current_pid_tgid",
           16: "get_current_comm", 112: "probe_read_user", 113: "probe_read_kernel", 131: "ringbuf_reserve",
           132: "ringbuf_submit", 174: "get_attach_cookie"}


def test_the_event_record_is_the_whole_hint():
    """The kernel hands over 96 bytes: times, ids, kind, code, depth, the socket's family, ports, addresses,
    netns and the comm -- and the raw summary field holds only ENDPOINT_KEYS."""
    assert probes.EVENT.size == 96 and probes.EVENT.format == "=QQIIIHHiiHHHH16s16s16s"
    src = (ROOT / "sensor" / "ebpf" / "hints.bpf.c").read_text()
    body = re.sub(r"/\*.*?\*/", "", src.split("struct hint_event {", 1)[1].split("};", 1)[0], flags=re.S)
    names = re.findall(r"\b(\w+)(?:\[\d+\])?;", body)
    assert names == ["ts_ns", "recv_ns", "tgid", "tid", "netns", "kind", "lib", "code", "depth", "family",
                     "lport", "rport", "pad", "laddr", "raddr", "comm"]
    assert H.ENDPOINT_KEYS == ("side", "pid", "comm", "library", "verify_error", "verify_depth", "ssl_errors")


def test_the_program_reads_only_four_byte_ints_of_user_memory():
    objdump = shutil.which("llvm-objdump") or shutil.which("llvm-objdump-14")
    if objdump is None:
        pytest.skip("llvm-objdump is not installed")
    if not OBJECT.exists():
        pytest.fail("%s not built: python3 setup.py build_ext --inplace" % OBJECT)
    lines = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(OBJECT)], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    calls = [(i, int(m.group(1))) for i, line in enumerate(lines) if (m := re.search(r"\bcall (\d+)$", line))]
    assert calls and {c for _, c in calls} <= set(HELPERS), {c for _, c in calls} - set(HELPERS)
    user_reads = [i for i, c in calls if c == 112]
    assert user_reads
    for i in user_reads:
        sizes = [m.group(1) for line in lines[max(0, i - 4):i] if (m := re.search(r"\br2 = (\d+)$", line))]
        assert sizes and sizes[-1] == "4", lines[i - 4:i + 1]


# ---------------------------------------------------------------------------------------------
# the join
# ---------------------------------------------------------------------------------------------

T = 1_800_000_000.0
C, S = "10.1.0.5:51000", "10.2.0.9:443"


def ev(t, local, remote, kind=2, code=134, depth=None, pid=7, comm="nginx", recv_age=0.001):
    return HintEvent(t, pid, pid, comm, kind, code, depth, "/lib/libcrypto.so.3", local, remote, 4026531840,
                     recv_age)


class FakeSource:
    def __init__(self):
        self.queue = []
        self.closed = False

    def poll(self):
        out, self.queue = self.queue, []
        return out

    def kernel_counters(self):
        return {"events": 0}

    def close(self):
        self.closed = True


def summary(start=T, end=T + 0.05, client=C, server=S):
    return {"client": client, "server": server, "start": start, "end": end}


def test_join_by_endpoints_time_and_side():
    src = FakeSource()
    j = HintJoiner(src)
    src.queue = [ev(T + 0.01, S, C, 1, 10, 0), ev(T + 0.011, S, C, 2, 134), ev(T + 0.02, C, S, 2, 1045, pid=9,
                                                                                  comm="curl"),
                 ev(T + 0.01, "10.1.0.5:51001", S),                      # another connection
                 ev(T + 100, S, C),                                      # the 5-tuple reused later
                 ev(T, None, None), ev(T, S, C, recv_age=5.0)]           # no socket; a stale read
    j.poll()
    raw = summary()
    assert j.attach(raw)
    assert raw["endpoint_hints"] == {"v": 1, "endpoints": [
        {"side": 0, "pid": 9, "comm": "curl", "library": "/lib/libcrypto.so.3", "verify_error": None,
         "verify_depth": None, "ssl_errors": [1045]},
        {"side": 1, "pid": 7, "comm": "nginx", "library": "/lib/libcrypto.so.3", "verify_error": 10,
         "verify_depth": 0, "ssl_errors": [134]}]}
    assert H.check_hints(raw["endpoint_hints"])
    assert j.unmapped == 2 and j.joined == 3
    later = summary(T + 99.9, T + 100.2)
    assert j.attach(later) and later["endpoint_hints"]["endpoints"][0]["side"] == 1
    assert not j.attach(summary())                                      # claimed once
    other = summary(client="10.1.0.5:51001")
    assert j.attach(other)
    assert j.stats()["hints_waiting"] == 0


def test_first_verify_error_wins_and_errors_fold():
    """A verify callback that goes on reports the first error, then its consequences: the first is the cause."""
    src = FakeSource()
    j = HintJoiner(src)
    src.queue = [ev(T, S, C, 1, 20, 0), ev(T + 0.001, S, C, 1, 21, 0), ev(T + 0.002, S, C, 2, 134),
                 ev(T + 0.003, S, C, 2, 134)]
    j.poll()
    raw = summary()
    j.attach(raw)
    (e,) = raw["endpoint_hints"]["endpoints"]
    assert (e["verify_error"], e["verify_depth"], e["ssl_errors"]) == (20, 0, [134])


def test_unclaimed_hints_expire_and_the_store_is_bounded(monkeypatch):
    from sensor import hints as sh
    monkeypatch.setattr(sh, "MAX_CONNECTIONS", 3)
    src = FakeSource()
    clock = [0.0]
    j = HintJoiner(src, clock=lambda: clock[0])
    import time as _t
    now = _t.time()
    src.queue = [ev(now - 120, S, "10.9.9.9:%d" % i) for i in range(2)] + \
        [ev(now, S, "10.9.9.8:%d" % i) for i in range(3)]
    j.poll()
    assert j.expired == 2                       # bounded: the two oldest connections went
    clock[0] = 5.0
    j.poll()
    assert j.stats()["hints_waiting"] == 3 and j.expired == 2


class FakeCapture:
    linktype = 1
    backend = "pcap"

    def __init__(self):
        self.polls = 0

    def poll(self, timeout):
        self.polls += 1
        return []

    def stats(self):
        return {"packets": 0, "pcap_drop": 0}


def test_the_loop_holds_summaries_and_emits_them_with_their_hints(monkeypatch):
    src = FakeSource()
    clock = [0.0]
    joiner = HintJoiner(src, hold=0.3, clock=lambda: clock[0])
    got = []
    s = Sensor(SensorConfig(), FakeCapture(), lambda raw, certs: got.append(raw), hints=joiner)
    raw = dict(summary(), id="x")
    s._out([(raw, [])])
    assert got == [] and joiner.held == 1
    src.queue = [ev(T + 0.01, S, C, 1, 10, 0)]          # the hint arrives after the wire was done
    clock[0] = 0.1
    s.step(0)
    assert got == []
    clock[0] = 0.4
    s.step(0)
    assert got == [raw] and raw["endpoint_hints"]["endpoints"][0]["verify_error"] == 10
    raw2 = dict(summary(T + 10, T + 11), id="y")
    s._out([(raw2, [])])
    s.finish()                                          # everything held is emitted at the end
    assert got == [raw, raw2] and "endpoint_hints" not in raw2
    st = s.stats()
    assert st["hints_events"] == 1 and st["hints_summaries"] == 1 and st["hints_kernel_events"] == 0


def test_without_hints_the_loop_emits_at_once():
    got = []
    s = Sensor(SensorConfig(), FakeCapture(), lambda raw, certs: got.append(raw))
    s._out([(dict(summary(), id="x"), [])])
    assert len(got) == 1 and "hints_events" not in s.stats()


# ---------------------------------------------------------------------------------------------
# the analyzer, on the real TLS 1.3 scenario captures (tests/data/scenarios-tls13)
# ---------------------------------------------------------------------------------------------

LOCAL_NETS = ["10.10.1.1/32", "10.10.3.1/32"]


def _engine():
    return Engine(build_config({"local_nets": LOCAL_NETS,
                                "truststore": str(TLS13 / "pki" / "root.pem")}))


def _connection(pcap: str, client: str):
    for raw, certs in raw_summaries(TLS13 / pcap):
        if raw["client"] == client:
            return raw, {c[0].hex(): c[1] for c in certs}, {c[0]: c[2] for c in certs}
    raise AssertionError("%s not in %s" % (client, pcap))


def _diagnose(raw, ders, facts, hint=None):
    r = copy.deepcopy(raw)
    if hint is not None:
        r["endpoint_hints"] = hint
    r = decode_summary(encode_summary(r))                 # as the analyzer gets it from Kafka
    s = summary_to_json(r, facts)
    return [d for d in _engine().diagnose(s, ders) if d["severity"] == "failure"]


@pytest.mark.parametrize("pcap,client,hint,cause,rule,side", [
    # the server (Router) rejected an expired client certificate: the wire says encrypted_failure
    ("cc13_expired_north.pcap", "10.10.1.2:20024", field(endpoint(1, 10, 0, (134,))),
     "expired_certificate", "TLS-HINT-CERT-EXPIRED", "server"),
    # ... and only the client's side was hooked: the alert it received, decrypted
    ("cc13_expired_north.pcap", "10.10.1.2:20024", field(endpoint(0, None, None, (1045, 407))),
     "expired_certificate", "TLS-HINT-CERT-EXPIRED", "server"),
    # an untrusted client certificate sent with its root: self-signed certificate in the chain at depth 1
    ("cc13_unknown_north.pcap", "10.10.1.2:20044", field(endpoint(1, 19, 1, (134,))),
     "unknown_certificate", "TLS-HINT-CERT-UNKNOWN", "server"),
    # a missing client certificate: the wire's size rule says so at medium confidence, the hint exactly
    ("cc13_missing_north.pcap", "10.10.1.2:20004", field(endpoint(1, None, None, (199,))),
     "client_certificate_missing", "TLS-HINT-CLIENT-CERT-MISSING", "server"),
    ("cc13_missing_south.pcap", "10.10.3.1:20014", field(endpoint(0, None, None, (1116, 407))),
     "client_certificate_missing", "TLS-HINT-CLIENT-CERT-MISSING", "server"),
])
def test_hints_give_the_exact_cause_where_the_wire_cannot(pcap, client, hint, cause, rule, side):
    raw, ders, facts = _connection(pcap, client)
    (wire,) = _diagnose(raw, ders, facts)
    assert not wire["rule"].startswith("TLS-HINT") and "endpoint_hints" not in wire["evidence"]
    (d,) = _diagnose(raw, ders, facts, hint)
    assert (d["cause"], d["rule"], d["rejected_by"], d["confidence"]) == (cause, rule, side, "high")
    assert d["evidence"]["cause_from"] == "endpoint_hint"
    assert d["evidence"]["wire_alone"]["rule"] == wire["rule"]
    assert "rests on the endpoint's own report" in d["explanation"]
    if d["direction"] == "northbound" and hint["endpoints"][0]["side"] == 1:
        assert "the Router's OpenSSL (pid 4242 openssl) reported X509_V_ERR_" in d["explanation"] \
            or "the Router's OpenSSL (pid 4242 openssl) ended the handshake" in d["explanation"]


def test_missing_intermediate_at_depth_0_and_an_untrusted_root_at_depth_1():
    raw, ders, facts = _connection("cc13_unknown_north.pcap", "10.10.1.2:20044")
    (d,) = _diagnose(raw, ders, facts, field(endpoint(1, 20, 0, (134,))))
    assert (d["cause"], d["rule"], d["confidence"]) == ("incomplete_chain", "TLS-HINT-CERT-INCOMPLETE-CHAIN", "medium")
    assert "most often the intermediate certificate was not sent" in d["explanation"] and d["raise_confidence"]
    (d,) = _diagnose(raw, ders, facts, field(endpoint(1, 20, 1, (134,))))
    assert (d["cause"], d["confidence"]) == ("unknown_certificate", "high")


def test_a_rejection_no_cause_names_gets_openssl_s_words_in_the_fix():
    raw, ders, facts = _connection("cc13_expired_north.pcap", "10.10.1.2:20024")
    (d,) = _diagnose(raw, ders, facts, field(endpoint(1, 23, 0, (134,))))
    assert (d["cause"], d["rule"]) == ("certificate_rejected", "TLS-HINT-CERT-REJECTED")
    assert "X509_V_ERR_CERT_REVOKED (certificate revoked) at depth 0" in d["remediation"]


def test_a_wire_answer_that_is_already_exact_stays_the_wire_s_and_is_confirmed():
    """TLS 1.2: the client's plaintext alert and the chain in clear name the cause with high confidence."""
    tls12 = HERE / "data" / "scenarios"
    for raw, certs in [x for p in sorted(tls12.glob("expired_*.pcap")) for x in raw_summaries(p)]:
        ders = {c[0].hex(): c[1] for c in certs}
        facts = {c[0]: c[2] for c in certs}
        s = summary_to_json(raw, facts)
        wire = [d for d in Engine(build_config({"truststore": str(tls12 / "pki" / "root.pem")})).diagnose(s, ders)
                if d["severity"] == "failure"]
        if not wire or wire[0]["cause"] != "expired_certificate" or wire[0]["confidence"] != "high" \
                or wire[0]["rejected_by"] != "client":
            continue
        hinted = dict(s, endpoint_hints=H.hints_to_json(field(endpoint(0, 10, 0, (134,))), 0x0303))
        (d,) = [x for x in Engine(build_config({"truststore": str(tls12 / "pki" / "root.pem")})).diagnose(
            hinted, ders) if x["severity"] == "failure"]
        assert d["rule"] == wire[0]["rule"] and d["evidence"]["cause_from"] == "wire"
        assert "confirmed by the endpoint: the client's OpenSSL" in d["explanation"]
        return
    pytest.skip("no TLS 1.2 expired-certificate scenario with a high-confidence wire diagnosis")


def test_a_verification_the_application_ignored_is_a_warning_not_a_failure():
    raw, ders, facts = _connection("cc13_expired_north.pcap", "10.10.1.2:20021")     # a success on the wire
    r = decode_summary(encode_summary(dict(raw, endpoint_hints=field(endpoint(1, 10, 0, ())))))
    ds = _engine().diagnose(summary_to_json(r, facts), ders)
    assert [(d["severity"], d["cause"]) for d in ds] == [("warning", "expired_certificate")]
    assert "did not enforce the verification" in ds[0]["explanation"]
    assert ds[0]["evidence"]["cause_from"] == "endpoint_hint"


def test_a_hinted_failure_teaches_the_profiles_nothing():
    raw, ders, facts = _connection("cc13_expired_north.pcap", "10.10.1.2:20024")
    r = decode_summary(encode_summary(dict(raw, endpoint_hints=field(endpoint(1, 10, 0, (134,))))))
    e = _engine()
    s = summary_to_json(r, facts)
    assert s["established"]
    e.observe(s, ders)
    assert e.profiles.for_server(s["server"]) is None
