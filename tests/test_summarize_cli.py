"""``tlsdiag summarize`` end to end, in a subprocess as a user runs it.

The expected fields per test capture were read once from the tool's output and checked by
eye against ``tshark -T fields -e tls.handshake.ciphersuite -e
tls.handshake.extensions_server_name -e tls.handshake.extensions.supported_version
-e tls.alert_message.desc -e tls.handshake.server_named_curve -e
tls.handshake.extensions_key_share_group`` (cipher, SNI, version, alert, curve all agree; the
history follows Zeek's alphabet, compared with Zeek in tests/test_conformance.py).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest
from conftest import BAD, CAPTURES, SHARED, ip_packet, ipv4_to_ipv6, read_frames, wrap

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    "alert_handshake_failure": dict(
        version=None, cipher=None, curve=None, server_name="legacy.example.com",
        established=False, history="Cl", last_alert="handshake_failure", outcome="alert",
        n_certs=0, fin=["client", "server"]),
    "alert_protocol_version": dict(
        version=None, cipher=None, curve=None, server_name="old.example.net",
        established=False, history="Cl", last_alert="protocol_version", outcome="alert",
        n_certs=0, fin=["server", "client"]),
    "tls12_ecdsa_nosni_py": dict(
        version="TLSv1.2", cipher="TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", curve="x25519",
        server_name=None, established=True, history="CsxknGIti", last_alert=None,
        outcome="established", n_certs=3, fin=[]),
    "tls12_rsa_chain3": dict(
        version="TLSv1.2", cipher="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", curve="x25519",
        server_name="www.example.com", established=True, history="CsxknGIti",
        last_alert=None, outcome="established", n_certs=3, fin=[]),
    "tls13_hrr": dict(
        version="TLSv1.3", cipher="TLS_CHACHA20_POLY1305_SHA256", curve="secp384r1",
        server_name="hrr.example.org", established=True, history="CjiICs", last_alert=None,
        outcome="established", n_certs=0, fin=[]),
    "tls13_nosni": dict(
        version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", curve="x25519", server_name=None,
        established=True, history="CsiI", last_alert=None, outcome="established", n_certs=0,
        fin=[]),
    "tls13_openssl": dict(
        version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", curve="x25519",
        server_name="api.example.org", established=True, history="CsiI", last_alert=None,
        outcome="established", n_certs=0, fin=[]),
    "tls13_py_alpn": dict(
        version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", curve="x25519",
        server_name="cdn.example.net", established=True, history="CsiI", last_alert=None,
        outcome="established", n_certs=0, fin=[]),
}


def run(*args, env_extra=None, timeout=120):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", *map(str, args)],
                          cwd=ROOT, capture_output=True, timeout=timeout, env=env)


def jsonl(r) -> list[dict]:
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def assert_clean_error(r, *, printed: int | None = None):
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tlsdiag summarize: error: "), lines
    if printed is not None:
        assert len(r.stdout.decode().splitlines()) == printed
    return lines[0]


@pytest.fixture(scope="module")
def all_output():
    paths = sorted(CAPTURES.glob("*.pcap"))
    r = run(*paths)
    assert r.returncode == 0, r.stderr.decode()
    assert b"Traceback" not in r.stderr
    out = jsonl(r)
    assert len(out) == len(paths) == len(EXPECTED)
    return dict(zip([p.stem for p in paths], out))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_fields(all_output, name):
    s, want = all_output[name], EXPECTED[name]
    for k in ("version", "cipher", "curve", "server_name", "established", "history",
              "last_alert", "outcome"):
        assert s[k] == want[k], (k, s[k], want[k])
    assert len(s["certificates"]) == want["n_certs"]
    assert s["close"]["fin"] == want["fin"]
    assert s["client"].startswith("127.0.0.1:") and s["server"] == "127.0.0.1:443"
    assert s["gaps"] == [] and s["truncated"] is False
    assert isinstance(s["start"], float) and s["end"] >= s["start"]
    assert s["ja4"] and s["ja4"][0] == "t"


def test_certificate_facts(all_output):
    chain = all_output["tls12_rsa_chain3"]["certificates"]
    assert [len(c["sha256"]) for c in chain] == [64, 64, 64]
    leaf = chain[0]
    assert "www.example.com" in leaf["san_dns"]
    assert leaf["is_ca"] is False and chain[-1]["self_signed"] is True
    assert chain[0]["issuer"] == chain[1]["subject"]


def test_client_offer_fields(all_output):
    s = all_output["tls13_py_alpn"]
    assert s["client_alpn"] == ["h2", "http/1.1"] and s["alpn"] is None   # chosen: encrypted
    assert s["client_versions"] == ["TLSv1.3", "TLSv1.2"]
    assert s["client_ciphers"][:3] == ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                                       "TLS_AES_128_GCM_SHA256"]
    assert len(s["client_ciphers"]) == 18
    hrr = all_output["tls13_hrr"]
    assert hrr["hrr"] is True


def test_both_implementations_print_the_same(all_output):
    paths = sorted(CAPTURES.glob("*.pcap"))
    r = run(*paths, env_extra={"TLSDIAG_NO_EXTENSIONS": "1"})
    assert r.returncode == 0
    assert jsonl(r) == list(all_output.values())


def test_table_format():
    r = run("--format", "table", CAPTURES / "tls12_rsa_chain3.pcap", CAPTURES / "tls13_hrr.pcap")
    assert r.returncode == 0 and b"Traceback" not in r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["client", "server", "version", "cipher", "server_name", "est",
                                "last_alert", "history"]
    assert len(lines) == 3
    row = lines[1].split()
    assert row[2:] == ["TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "www.example.com",
                       "yes", "-", "CsxknGIti"]
    assert lines[2].split()[2:] == ["TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256",
                                    "hrr.example.org", "yes", "-", "CjiICs"]


def test_gzip_gives_identical_jsonl(tmp_path, all_output):
    gz = tmp_path / "tls12_rsa_chain3.pcap.gz"
    gz.write_bytes(gzip.compress((CAPTURES / "tls12_rsa_chain3.pcap").read_bytes()))
    plain = run(CAPTURES / "tls12_rsa_chain3.pcap")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = run(gz, env_extra={"TMPDIR": str(tmp)})
    assert r.returncode == 0 and r.stdout == plain.stdout
    assert jsonl(r) == [all_output["tls12_rsa_chain3"]]
    assert list(tmp.iterdir()) == []            # the decompressed copy was removed


def test_pcapng_gives_identical_jsonl():
    """tls13_hrr.pcapng is ``editcap -F pcapng tls13_hrr.pcap``."""
    ng = CAPTURES / "tls13_hrr.pcapng"
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    r = run(ng)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run(CAPTURES / "tls13_hrr.pcap").stdout


def _rewrap(src: Path, dst: Path, linktype: int, v6: bool = False) -> None:
    _lt, frames = read_frames(src)
    with open(dst, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=linktype, snaplen=262144, nano=False)
        for ts, f in frames:
            pkt = ip_packet(f)
            w.writepkt(wrap(linktype, ipv4_to_ipv6(pkt) if v6 else pkt), ts=ts)


@pytest.mark.parametrize("linktype", [113, 276, 0, 108, 101, 228],
                         ids=["sll", "sll2", "null", "loop", "raw", "ipv4"])
def test_other_link_types_identical(tmp_path, all_output, linktype):
    """Linux cooked v1/v2, BSD loopback, raw IP: the same frames, re-encapsulated."""
    dst = tmp_path / ("lt%d.pcap" % linktype)
    _rewrap(CAPTURES / "tls12_rsa_chain3.pcap", dst, linktype)
    r = run(dst)
    assert r.returncode == 0, r.stderr
    assert jsonl(r) == [all_output["tls12_rsa_chain3"]]


def test_raw_ipv6(tmp_path, all_output):
    dst = tmp_path / "v6.pcap"
    _rewrap(CAPTURES / "tls13_openssl.pcap", dst, 229, v6=True)
    r = run(dst)
    assert r.returncode == 0, r.stderr
    [s] = jsonl(r)
    want = all_output["tls13_openssl"]
    assert s["server"] == "[2001:db8::7f00:1]:443"
    assert s["client"] == "[2001:db8::7f00:1]:%s" % want["client"].split(":")[1]
    skip = {"id", "client", "server"}
    assert {k: v for k, v in s.items() if k not in skip} == \
        {k: v for k, v in want.items() if k not in skip}


def test_several_files_one_bad(all_output):
    """A bad file in the middle: the good ones around it are still summarized, exit 2."""
    r = run(CAPTURES / "tls13_nosni.pcap", BAD / "text.pcap", CAPTURES / "tls13_openssl.pcap")
    line = assert_clean_error(r, printed=2)
    assert "text.pcap" in line and "not a pcap" in line
    assert [s["history"] for s in jsonl(r)] == ["CsiI", "CsiI"]


# ---------------------------------------------------------------------------------------------
# unreadable, corrupt, truncated
# ---------------------------------------------------------------------------------------------

def _through_a_fifo(tmp_path, data: bytes, *args) -> subprocess.CompletedProcess:
    """``tlsdiag summarize FIFO *args`` with ``data`` written into the FIFO as it reads."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    # (the writer reads all of data before it opens the FIFO, which waits for the reader)
    writer = subprocess.Popen([sys.executable, "-c", "import sys; d = sys.stdin.buffer.read(); "
                               "open(sys.argv[1], 'wb').write(d)",
                               str(fifo)], stdin=subprocess.PIPE)
    try:
        writer.stdin.write(data)
        writer.stdin.close()
        return run(fifo, *args, timeout=60)
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("name", ["tls12_rsa_chain3.pcap", "tls13_hrr.pcapng"])
def test_a_stream_is_read_as_it_comes(tmp_path, name, jobs):
    # a pipe (tcpdump -w - | ..., <(zcat ...)): read once, by libpcap alone -- looking at its
    # first bytes here, or mapping it, or each --jobs worker opening it, took them from it
    # ("unknown file format", or one worker's share)
    data = (CAPTURES / name).read_bytes()
    r = _through_a_fifo(tmp_path, data, "--jobs", jobs)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run(CAPTURES / name).stdout != b""


def test_standard_input_is_dash():
    data = (CAPTURES / "tls12_rsa_chain3.pcap").read_bytes()
    r = subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", "-"], input=data,
                       cwd=ROOT, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run(CAPTURES / "tls12_rsa_chain3.pcap").stdout != b""


def test_a_gzip_stream_is_a_clear_error(tmp_path):
    data = gzip.compress((CAPTURES / "tls12_rsa_chain3.pcap").read_bytes())
    line = assert_clean_error(_through_a_fifo(tmp_path, data), printed=0)
    assert "not gzip" in line


def _pcap_with_snaplen(data: bytes, snaplen: int) -> bytes:
    """A little-endian classic pcap whose file header says ``snaplen``."""
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    return data[:16] + struct.pack("<I", snaplen) + data[20:]


def _cut_long() -> bytes:
    # 13,798 packets in 2.9 MB: cut inside a record of its 9th batch, past the first 1 MB
    # the stream is read in
    return (ROOT / "tests" / "data" / "scenarios-tls13" / "mixed_long.pcap").read_bytes()[:1800000]


@pytest.mark.parametrize("name", ["truncated_mid_packet.pcap", "truncated_mid_header.pcap",
                                  "huge_caplen.pcap", "header_only.pcap", "cut_long",
                                  "snaplen_below_records", "text.pcap", "empty.pcap"])
def test_a_bad_stream_gives_what_the_file_gives(tmp_path, name):
    # a stream cannot be read again: the good packets of the batch that ends in the bad
    # record are delivered before it all the same (libpcap alone would lose them: up to
    # 1,023).  A record libpcap reads differently (a caplen above the file's snap length)
    # is libpcap's, from its batch on, as in a file
    if name == "cut_long":
        data = _cut_long()
    elif name == "snaplen_below_records":
        data = _pcap_with_snaplen((CAPTURES / "tls12_rsa_chain3.pcap").read_bytes(), 200)
    else:
        data = (BAD / name).read_bytes()
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    as_file = run(path)
    as_stream = _through_a_fifo(tmp_path, data)
    assert as_stream.returncode == as_file.returncode
    assert as_stream.stdout == as_file.stdout
    assert as_stream.stderr.decode().replace(str(tmp_path / "capture.fifo"), "X") \
        .replace(" stream", " file") == \
        as_file.stderr.decode().replace(str(path), "X")
    if name in ("cut_long", "truncated_mid_packet.pcap", "snaplen_below_records"):
        assert as_stream.stdout != b""


def test_a_stream_cut_short_is_a_clear_error(tmp_path):
    data = (CAPTURES / "tls12_rsa_chain3.pcap").read_bytes()
    r = _through_a_fifo(tmp_path, data[:-20])
    line = assert_clean_error(r, printed=1)
    assert "corrupt capture after 25 packets" in line and "truncated" in line


def test_a_pcapng_stream_cut_short_loses_nothing(tmp_path):
    # pcapng from a stream is walked as it comes, as classic pcap is: the packets of the batch
    # that ends in the bad block are read too (libpcap alone, in batches, lost them)
    ng = CAPTURES / "tls13_hrr.pcapng"
    data = ng.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-20])
    from_file = run(cut)
    as_stream = _through_a_fifo(tmp_path, data[:-20])
    line = assert_clean_error(as_stream, printed=1)
    assert as_stream.stdout == from_file.stdout
    assert line.replace(str(tmp_path / "capture.fifo"), "X") == \
        from_file.stderr.decode().strip().replace(str(cut), "X")
    assert "corrupt capture after 27 packets: truncated pcapng" in line


def test_missing_file(tmp_path):
    line = assert_clean_error(run(tmp_path / "nope.pcap"), printed=0)
    assert "nope.pcap" in line and "No such file" in line


def test_directory(tmp_path):
    assert_clean_error(run(tmp_path), printed=0)


def test_text_file():
    assert "not a pcap" in assert_clean_error(run(BAD / "text.pcap"), printed=0)


def test_empty_file():
    assert "not a pcap" in assert_clean_error(run(BAD / "empty.pcap"), printed=0)


def test_header_only_is_an_empty_capture():
    r = run(BAD / "header_only.pcap")
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""


@pytest.mark.parametrize("name", ["truncated_mid_packet.pcap", "truncated_mid_header.pcap"])
def test_truncated_capture_prints_what_was_read(all_output, name):
    """tls12_rsa_chain3.pcap cut inside its last record: the connection (complete before
    the cut) is printed, then one error line."""
    r = run(BAD / name)
    line = assert_clean_error(r, printed=1)
    assert "corrupt capture after 25 packets" in line and "truncated" in line
    [s] = jsonl(r)
    assert s == all_output["tls12_rsa_chain3"]


def test_absurd_record_length():
    """A record header claiming a 4 GB packet after two packets."""
    line = assert_clean_error(run(BAD / "huge_caplen.pcap"))
    assert "corrupt capture after 2 packets" in line


def test_corrupt_gzip_is_a_clear_error():
    assert "truncated" in assert_clean_error(run(BAD / "truncated.pcap.gz"))


def test_truncated_gzip_prints_what_was_read():
    r = run(BAD / "truncated.pcap.gz")
    assert_clean_error(r)
    assert len(jsonl(r)) == 1


SURICATA = SHARED / "corpus" / "suricata-verify"


@pytest.mark.parametrize("name", ["bug-1450-04__tls_DER-incomplete-header.pcap",
                                  "bug-1450-05__tls_DER-incomplete-content.pcap"])
def test_corrupt_suricata_captures(name):
    path = SURICATA / name
    if not path.exists():
        pytest.skip("../shared/corpus is not beside this checkout (CI provides it)")
    r = run(path)
    line = assert_clean_error(r)
    assert "corrupt capture" in line
    assert len(r.stdout.decode().splitlines()) >= 1        # what was read is printed


def test_usage_errors():
    r = run()
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    r = run("--format", "xml", CAPTURES / "tls13_nosni.pcap")
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    r = run("--max-flows", "0", CAPTURES / "tls13_nosni.pcap")
    assert r.returncode == 2 and b"Traceback" not in r.stderr


def test_broken_pipe_is_quiet():
    """``tlsdiag summarize ... | head -1``"""
    if shutil.which("head") is None:
        pytest.skip("no head(1)")
    paths = " ".join(str(p) for p in sorted(CAPTURES.glob("*.pcap")) * 20)
    r = subprocess.run("%s -m tlsdiag summarize %s | head -1" % (sys.executable, paths),
                       shell=True, cwd=ROOT, capture_output=True, timeout=120)
    assert r.stdout.count(b"\n") == 1
    assert b"Traceback" not in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("command", ["summarize", "diagnose"])
def test_a_closed_standard_output_is_a_one_line_error(command):
    """``tlsdiag summarize x.pcap >&-``: exit status 2 and a line that says why (the output was
    lost without a word, or a traceback); the capture, opened later, does not become fd 1."""
    cap = str(CAPTURES / "tls12_rsa_chain3.pcap")
    before = Path(cap).read_bytes()
    for fmt in ("jsonl", "table" if command == "summarize" else "text"):
        r = subprocess.run([sys.executable, "-m", "tlsdiag", command, "--format", fmt, cap],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, timeout=120,
                           text=True, preexec_fn=lambda: os.close(1))
        assert r.returncode == 2, r.stderr
        assert r.stderr == "tlsdiag %s: error: cannot write the output: standard output is closed\n" % command
    assert Path(cap).read_bytes() == before


def test_a_closed_standard_error_keeps_the_exit_status():
    """``2>&-``: a file that is not a capture is still exit status 2, not Python's 1."""
    r = subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", str(BAD / "text.pcap")],
                       capture_output=False, stdout=subprocess.DEVNULL, cwd=ROOT, timeout=120,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 2


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_non_blocking_output_waits_for_its_reader(jobs):
    """A parent that hands over a non-blocking pipe (O_NONBLOCK on fd 1) and reads it slowly:
    the output waits for the reader, whole, exit status 0 (it was a BlockingIOError, cut short)."""
    paths = [str(p) for p in sorted(CAPTURES.glob("*.pcap"))] * 40
    want = subprocess.run([sys.executable, "-m", "tlsdiag", "summarize", *paths], capture_output=True,
                          cwd=ROOT, timeout=120).stdout
    assert len(want) > 4 * 65536                # (more than a pipe holds)
    rd, wr = os.pipe()
    os.set_blocking(wr, False)
    p = subprocess.Popen([sys.executable, "-m", "tlsdiag", "summarize", "--jobs", jobs, *paths],
                         stdout=wr, stderr=subprocess.PIPE, cwd=ROOT)
    os.close(wr)
    time.sleep(1.0)                             # (the pipe fills: the writer must wait)
    got = bytearray()
    with os.fdopen(rd, "rb") as f:
        while chunk := f.read(4096):
            got += chunk
            time.sleep(0.001)
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert bytes(got) == want and "Traceback" not in err


def test_unsupported_link_type_is_a_clear_error(tmp_path):
    """An 802.11 capture (LINKTYPE_IEEE802_11 = 105): one line naming the link type, exit 2,
    instead of silently skipping every packet."""
    p = tmp_path / "wifi.pcap"
    frame = b"\x08\x00" + b"\x00" * 22
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105)
                  + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    line = assert_clean_error(run(p))
    assert "link type 105 is not supported" in line


# -- --jobs auto: the CPUs this process may use --------------------------------------------------------------

def _tree(root: Path, files: dict) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize("own, files, quota", [
    # cgroup v2: in its own cgroup, or (a container's view) at the root
    ("0::/system.slice/x.service\n", {"system.slice/x.service/cpu.max": "150000 100000\n"}, 1.5),
    ("0::/system.slice/x.service\n", {"system.slice/x.service/cpu.max": "max 100000\n"}, None),
    ("0::/\n", {"cpu.max": "50000 100000\n"}, 0.5),
    ("0::/gone\n", {"cpu.max": "200000 100000\n"}, 2.0),
    # cgroup v1, the cpu controller mounted with cpuacct or alone
    ("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
     {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
      "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.5),
    ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    # nothing to say, or nonsense
    ("0::/\n", {}, None),
    ("0::/\n", {"cpu.max": "lots\n"}, None),
    ("garbage\n", {}, None),
])
def test_cgroup_cpu_quota(tmp_path, own, files, quota):
    from tlsdiag.commands.summarize import cgroup_cpu_quota
    _tree(tmp_path / "fs", files)
    (tmp_path / "own").write_text(own)
    assert cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "own")) == quota


@pytest.mark.parametrize("affinity, quota, want", [
    (4, None, 4), (4, 1.5, 2), (4, 0.5, 1), (2, 8.0, 2), (1, None, 1)])
def test_jobs_auto_is_the_cpus_this_process_may_use(monkeypatch, affinity, quota, want):
    from tlsdiag.commands import summarize
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(summarize, "cgroup_cpu_quota", lambda: quota)
    assert summarize.usable_cpus() == want
    assert summarize.jobs_count("auto") == want
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(100)))
    monkeypatch.setattr(summarize, "cgroup_cpu_quota", lambda: None)
    assert summarize.jobs_count("auto") == summarize.MAX_JOBS


@pytest.mark.parametrize("command", ["summarize", "diagnose"])
def test_jobs_auto_same_output_and_what_else_is_refused(command):
    example = str(ROOT / "examples" / "gateway-failures.pcap")
    args = [sys.executable, "-m", "tlsdiag", command, "--format", "jsonl", example]
    one = subprocess.run(args, capture_output=True, cwd=ROOT, timeout=120)
    auto = subprocess.run(args + ["--jobs", "auto"], capture_output=True, cwd=ROOT, timeout=120)
    assert one.stdout and (auto.stdout, auto.returncode) == (one.stdout, one.returncode)
    bad = subprocess.run(args + ["--jobs", "many"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "not a number or auto: 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_table_shows_a_server_name_with_terminal_controls_escaped(tmp_path):
    # a client chooses its SNI: a screen clear and a window title as its first 15 bytes
    evil = b"\x1b[2J\x1b]0;PWN\x07\nAB"
    data = (CAPTURES / "tls12_rsa_chain3.pcap").read_bytes()
    assert data.count(b"\x00\x00\x0fwww.example.com") == 1 and len(evil) == 15
    path = tmp_path / "esc.pcap"
    path.write_bytes(data.replace(b"\x00\x00\x0fwww.example.com", b"\x00\x00\x0f" + evil))
    r = run("--format", "table", path)
    assert r.returncode == 0 and b"\x1b" not in r.stdout and b"\x07" not in r.stdout
    (row,) = r.stdout.decode().splitlines()[1:]
    assert row.split()[4] == "\\x1b[2J\\x1b]0;PWN\\x07\\x0"   # (escaped, then cut to the column)
    (line,) = jsonl(run("--format", "jsonl", path))
    assert line["server_name"] == evil.decode()                 # (JSON carries it as it was: \u001b)


@pytest.mark.parametrize("how", ["version 2.3", "garbage after"])
def test_a_file_name_that_is_not_utf8_reads_as_any_other(tmp_path, how):
    # what libpcap reads (another version: all of it; a bad record: from its batch on) was opened
    # by a name pcapy-ng encodes as UTF-8: an error and no output, or the open connections lost
    data = bytearray((ROOT / "examples" / "gateway-failures.pcap").read_bytes())
    if how == "version 2.3":
        data[6:8] = struct.pack("<H", 3)
    else:
        data += b"\x00" * 8 + struct.pack("<II", 0xFFFFFF, 0xFFFFFF) + b"junk"
    plain = tmp_path / "plain.pcap"
    plain.write_bytes(data)
    odd = os.path.join(os.fsencode(tmp_path), b"odd-\xff.pcap")
    with open(odd, "wb") as f:
        f.write(data)
    want, got = run("--format", "jsonl", plain), run("--format", "jsonl", os.fsdecode(odd))
    assert len(jsonl(want)) == 89 and got.stdout == want.stdout
    assert (got.returncode, got.stderr.replace(b"odd-\\udcff", b"plain")) == (want.returncode, want.stderr)


def test_reassembly_memcap_flag(tmp_path):
    """``--reassembly-memcap-mb`` reaches the flow table: two clients each send 700 KB of a
    ClientHello that announces 1 MiB - 1 and stall.  Under a 1 MiB budget the first (holding
    the most when the second passed 350 KB) gives up -- a client gap, the weird -- and the
    stats count it; under the default budget neither does."""
    import dpkt
    from test_flows import ACK, FIN, PSH, Conn
    hello = b"\x01" + ((1 << 20) - 1).to_bytes(3, "big") + b"\x03\x03" + bytes(700_000)
    records = b"".join(b"\x16\x03\x01" + len(hello[i:i + 16384]).to_bytes(2, "big")
                       + hello[i:i + 16384] for i in range(0, len(hello), 16384))
    path = tmp_path / "stall.pcap"
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        conns = [Conn(client=("10.0.5.%d" % (i + 1), 45000 + i)) for i in range(2)]
        frames = []
        for c in conns:                 # the one's hello, then the other's; then both close
            frames += c.handshake() + [c.frame(0, ACK | PSH, k, records[k:k + 1400])
                                       for k in range(0, len(records), 1400)]
        for c in conns:
            frames += [c.frame(0, ACK | FIN, len(records)), c.frame(1, ACK | FIN, 0)]
        for i, f in enumerate(frames):
            w.writepkt(f, 1000.0 + i / 10_000)
    cut = run("--format", "jsonl", "--stats", "--reassembly-memcap-mb", "1", path)
    assert cut.returncode == 0, cut.stderr
    weird = {s["client"]: ("reassembly_memcap" in s["weirds"], s["gaps"]) for s in jsonl(cut)}
    assert weird == {"10.0.5.1:45000": (True, ["client"]), "10.0.5.2:45001": (False, [])}
    assert "reassembly_memcap=1" in cut.stderr.decode()
    whole = run("--format", "jsonl", path)
    assert [("reassembly_memcap" in s["weirds"], s["gaps"]) for s in jsonl(whole)] == \
        [(False, [])] * 2
