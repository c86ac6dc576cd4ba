"""atheris fuzz target for the wire core (see README.md in this directory).

The first byte of an input picks a target, the second is a parameter, the rest is the data:

* 0-2  ``parse_client_hello`` / ``parse_server_hello`` / ``parse_certificate`` (tls13 = bit 0
  of the parameter);
* 3    ``parse_client_hello_key`` (the ClientHello as the sensor keeps it: its offer key);
* 4    ``PacketDecoder`` reading the data as the records of a pcap file (``begin_pcap``,
  ``pcap_batch``: byte order and time stamp resolution from the parameter), in batches of
  up to 4 records, and ``connection_id`` on the first segment;
* 5    ``PacketDecoder.decode`` on a sequence of frames (2-byte big-endian length prefixes)
  of the link type chosen by the parameter, one decoder per implementation sharing nothing;
* 6    ``TLSConnection.feed`` on chunks of both directions (2-byte header: top bit = server,
  low 15 bits = length);
* 7    the whole per-segment engine: frames as for 5, through decoder and flow table to the
  summaries (tight table limits, the reassembly memcap too, when the parameter's top bit is
  set);
* 8    ``PacketDecoder`` reading the data as a pcapng capture (``begin_pcapng``, batches of
  up to 4 packets): from its first packet block with the interfaces
  ``sensor.savefile.pcapng_header`` finds, else from its start with byte order and
  interfaces (resolutions, offsets) from the parameter;
* 9    the whole engine on the frames as the records of a classic pcap file, walked as the
  sensor walks one (windows and batches from the parameter);
* 10   the whole engine on the frames as live capture hands them over: pcapy-ng batches
  (``begin_batch`` / ``FlowTable.decoded``) of up to 8 frames, with descriptors that lie
  (an offset or a length past the buffer, a length that takes in the next frame) when bit 6
  of the parameter is set.

6, 7, 9 and 10 compare the compiled engine (``cext._tls``/``_session``/``_flows`` on ``cext._wire``)
with its twin (``cext._tls_py`` ... on ``cext._wire_py``), each handed out whole by
``cext.wire.engine``.

It fails (raises) on any exception other than ``MalformedMessage`` / ``ProtocolError`` with
a reason from ``REASONS``, and on any disagreement between the Cython build and the pure-Python
twin (return values, exception reason, decoder counters, TLS events).

Run: ``python tests/fuzz/fuzz_wire.py --make-seeds /tmp/wire-corpus`` once, then
``python tests/fuzz/fuzz_wire.py -max_total_time=600 /tmp/wire-corpus``.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from cext.errors import REASONS, MalformedMessage, ProtocolError  # noqa: E402
from cext.wire import Engine, engine  # noqa: E402
from proto.summary import encode_summary  # noqa: E402
from sensor.savefile import Layout, pcapng_header  # noqa: E402

try:
    _C_ENGINE: Engine | None = engine("c")
except ImportError:                 # the twin alone: still checks "no other exception"
    _C_ENGINE = None

LINKTYPES = (1, 113, 276, 0, 108, 12, 101, 228, 229)
#: the twin, then the compiled engine: each one build throughout (cext.wire.engine)
ENGINES = (engine("py"),) + ((_C_ENGINE,) if _C_ENGINE is not None else ())
IMPLS = tuple(e.wire for e in ENGINES)
N_TARGETS = 11


class Disagreement(AssertionError):
    """The two implementations gave different results for the same input."""


def _call(fn, *args):
    try:
        return ("ok", fn(*args))
    except MalformedMessage as exc:
        if exc.reason not in REASONS:
            raise AssertionError("reason %r not in REASONS" % exc.reason) from exc
        return ("MalformedMessage", exc.reason)


def _same(results, what):
    first = results[0]
    for other in results[1:]:
        if other != first:
            raise Disagreement("%s: py=%r c=%r" % (what, first, other))
    return first


def _frames(data: bytes):
    pos = 0
    while pos + 2 <= len(data):
        n = struct.unpack_from("!H", data, pos)[0]
        pos += 2
        yield data[pos:pos + n]
        pos += n


def _decode_all(impl, linktype, frames):
    flows: dict = {}
    dec = impl.PacketDecoder(linktype, flows, {})
    out = [dec.decode(float(i), f) for i, f in enumerate(frames)]
    return out, dec.stats(), sorted(flows)


def _pcap_records(impl, arg, data):
    """``data`` as pcap records, through the decoder's pcap source."""
    flows: dict = {}
    dec = impl.PacketDecoder(1, flows, {})
    dec.begin_pcap(data, 0, len(data), bool(arg & 1), bool(arg & 2), 64 + (arg >> 2) * 16)
    return _walked(impl, dec, flows)


def _walked(impl, dec, flows: dict) -> tuple:
    """What the decoder gives of the capture it began, in batches of up to 4 packets."""
    out = []
    while True:
        n = dec.pcap_batch(4)
        out.append(n)
        if n <= 0:
            break
        while dec.next():
            out.append((dec.ts, dec.key, dec.from_lo, dec.flags, dec.seq, dec.payload,
                        dec.truncated, impl.connection_id(dec.ts, dec.key.hex(), "x")))
    return out, dec.stats(), dec.pcap_pos, sorted(flows)


#: time stamp resolutions the pcapng target's parameter picks from
_NG_RESOLUTIONS = (1, 10 ** 3, 10 ** 6, 10 ** 9, 10 ** 12, 10 ** 19)


def _pcapng_blocks(impl, arg, data):
    """``data`` as a pcapng capture, through the decoder's pcapng source."""
    layout = pcapng_header(data, True)
    if isinstance(layout, Layout):
        start, big, snap, ifaces = layout.start, layout.big, layout.snap, layout.ifaces
    else:
        start, big, snap = 0, bool(arg & 0x80), 64 + (arg & 0x70)
        ifaces = tuple((_NG_RESOLUTIONS[(arg + k) % len(_NG_RESOLUTIONS)], -7 * k)
                       for k in range(1 + (arg & 3)))
    flows: dict = {}
    dec = impl.PacketDecoder(1, flows, {})
    dec.begin_pcapng(data, start, len(data), big, snap, ifaces)
    return _walked(impl, dec, flows)


def _chunks(data: bytes):
    pos = 0
    while pos + 2 <= len(data):
        h = struct.unpack_from("!H", data, pos)[0]
        pos += 2
        yield h >> 15, data[pos:pos + (h & 0x7FFF)]
        pos += h & 0x7FFF


def tls_events(engine: Engine, chunks) -> list:
    """Feed ``chunks`` into a fresh TLSConnection of ``engine``: the events and the
    protocol-error reasons, in order."""
    conn = engine.connection()
    out = []
    for d, data in chunks:
        events, error = conn.feed(d, data)
        out.extend((type(e).__name__,) + tuple(e) for e in events)
        if error is not None:
            if not isinstance(error, ProtocolError) or error.reason not in REASONS:
                raise AssertionError("bad protocol error %r" % (error,))
            out.append(("error", d, error.reason))
    return out


def flow_summaries(engine: Engine, linktype: int, frames, **limits) -> tuple:
    """``frames`` ((ts, bytes), ...) through the engine's decoder and flow table, then an
    idle expiry and a flush: each connection as (msgpack summary, JSON rendering,
    certificate digests), and the flow-table, weird and decoder counters.  An internal
    error (an exception the flow table's guard caught) is a bug: it raises."""
    table = engine.flow_table(**limits)
    dec = engine.decoder(linktype, table)
    done = []
    for ts, frame in frames:
        seg = dec.decode(ts, frame)
        if seg is not None:
            done += table.process([seg])
    return _ended(engine, table, dec, done, frames[-1][0] if frames else None)


def _ended(engine: Engine, table, dec, done: list, last: "float | None") -> tuple:
    """An idle expiry an hour after ``last`` and a flush, then what :func:`flow_summaries`
    returns; an internal error raises."""
    if last is not None:
        done += table.expire(last + 3600.0)
    done += table.flush()
    if table.stats["internal_errors"]:
        raise AssertionError("internal error in %s" % engine.flows.__name__)
    # (each build's own renderer: the sensor runs the compiled one, cext._render)
    out = [(encode_summary(raw), orjson.dumps(engine.render.summary_to_json(raw, {})),
            [d for d, _der in ders]) for raw, ders in done]
    return out, dict(table.stats), dict(table.reasons), dec.stats()


def pcap_summaries(engine: Engine, linktype: int, frames, arg: int) -> tuple:
    """``frames`` as a classic pcap file walked as the sensor walks one (``PcapFile.batches``:
    windows of the file, ``begin_pcap`` / ``pcap_batch`` / ``FlowTable.decoded``, a batch that
    runs past its window read again from its start in the next, a larger one if none fit),
    with small windows and batches (``arg``), then an idle expiry and a flush: as
    :func:`flow_summaries`, and where the walk ended and why."""
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype) + b"".join(
        struct.pack("<IIII", 1_000 + i // 8, (i % 8) * 125_000, len(f), len(f)) + f
        for i, f in enumerate(frames))
    window, batch = 128 * (1 + (arg >> 4)), 1 + (arg & 7)
    table = engine.flow_table()
    dec = engine.decoder(linktype, table)
    done, pos, need, end = [], 24, 0, "complete"
    while pos < len(data):
        view = memoryview(data)[pos:pos + max(window, need)]
        at_eof = pos + len(view) == len(data)
        dec.begin_pcap(view, 0, len(view), False, False, 65535, at_eof)
        first = pos
        while True:
            n = dec.pcap_batch(batch)
            if n == -2:
                at = first + dec.pcap_pos
                need = 2 * (first + len(view) - at) if at == first else 0
                pos = at
                break
            if n < 0:
                end = "stopped at %d" % (first + dec.pcap_pos)
                pos = len(data)
                break
            if n == 0:
                pos = len(data)
                break
            done += table.decoded(dec)
            pos = first + dec.pcap_pos
    last = 1_000 + (len(frames) - 1) / 8 if frames else None
    return _ended(engine, table, dec, done, last) + (end,)


def batch_summaries(engine: Engine, linktype: int, frames, arg: int) -> tuple:
    """``frames`` as the live capture hands them to the sensor (``Sensor.step``): pcapy-ng
    batches, a buffer and its 16-byte ``(sec, usec, offset, caplen)`` descriptors, read by
    ``begin_batch`` / ``FlowTable.decoded``, ``1 + (arg & 7)`` frames a batch; with bit 6
    of ``arg`` every third descriptor lies (an offset half a frame on, so it runs past the
    buffer at its end; a length that takes in 17 bytes of the next frame or of nothing).
    Then an idle expiry and a flush: as :func:`flow_summaries`."""
    table = engine.flow_table()
    dec = engine.decoder(linktype, table)
    n, done = 1 + (arg & 7), []
    for i in range(0, len(frames), n):
        part = frames[i:i + n]
        meta, off = [], 0
        for k, f in enumerate(part, i):
            o, c = off, len(f)
            if arg & 0x40 and k % 3 == 2:
                o, c = (o + c // 2, c) if k % 2 else (o, c + 17)
            meta.append(struct.pack("=IIII", 1_000 + k // 8, (k % 8) * 125_000, o, c))
            off += len(f)
        dec.begin_batch(b"".join(part), b"".join(meta))
        done += table.decoded(dec)
    return _ended(engine, table, dec, done, 1_000 + (len(frames) - 1) / 8 if frames else None)


def one_input(data: bytes) -> None:
    """The target: raises on a crash or a C/Py disagreement, returns otherwise."""
    if len(data) < 2:
        return
    op, arg, body = data[0] % N_TARGETS, data[1], bytes(data[2:])
    if op == 0:
        _same([_call(m.parse_client_hello, body) for m in IMPLS], "parse_client_hello")
    elif op == 1:
        _same([_call(m.parse_server_hello, body) for m in IMPLS], "parse_server_hello")
    elif op == 2:
        _same([_call(m.parse_certificate, body, bool(arg & 1)) for m in IMPLS],
              "parse_certificate")
    elif op == 3:
        _same([_call(m.parse_client_hello_key, body) for m in IMPLS], "parse_client_hello_key")
    elif op == 4:
        _same([_pcap_records(m, arg, body) for m in IMPLS], "pcap records")
    elif op == 5:
        frames = list(_frames(body))
        lt = LINKTYPES[arg % len(LINKTYPES)]
        _same([_decode_all(m, lt, frames) for m in IMPLS], "PacketDecoder(%d)" % lt)
    elif op == 6:
        chunks = list(_chunks(body))
        _same([tls_events(e, chunks) for e in ENGINES], "TLSConnection")
    elif op == 8:
        _same([_pcapng_blocks(m, arg, body) for m in IMPLS], "pcapng blocks")
    elif op == 9:
        frames = [f for f in _frames(body) if len(f) <= 65535]
        lt = LINKTYPES[arg % len(LINKTYPES)]
        _same([pcap_summaries(e, lt, frames, arg) for e in ENGINES], "pcap walk (%d)" % lt)
    elif op == 10:
        frames = list(_frames(body))
        lt = LINKTYPES[arg % len(LINKTYPES)] if arg & 0x80 else LINKTYPES[0]
        _same([batch_summaries(e, lt, frames, arg) for e in ENGINES], "live batches (%d)" % lt)
    else:
        frames = [(i / 8, f) for i, f in enumerate(_frames(body))]
        lt = LINKTYPES[arg % len(LINKTYPES)]
        limits = {"max_flows": 2, "max_ooo_segments": 2, "max_ooo_bytes": 2000, "max_done": 4,
                  "idle_timeout": 0.5, "close_linger": 0.2, "skip_min": 64,
                  "max_buffered": 3000} if arg & 0x80 else {}
        _same([flow_summaries(e, lt, frames, **limits) for e in ENGINES], "FlowTable(%d)" % lt)


def seeds():
    """Seed inputs from the test captures: real hellos, certificates, streams and frames."""
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest as g
    m = g.golden_messages()
    out = [bytes([0, 0]) + b for b in m["client_hello"]]
    out += [bytes([1, 0]) + b for b in m["server_hello"]]
    out += [bytes([2, int(t13)]) + b for b, t13 in m["certificate"]]
    out += [bytes([3, 0]) + b for b in m["client_hello"]]
    for path in g.capture_paths()[:4]:
        out.append(bytes([4, 0x3C]) + path.read_bytes()[24:4096])
    from tests.support.pcapng import to_pcapng
    # (resolutions and offsets that scale, round and shift: the captures are of 1795798485+)
    stamps = [((6,), 0), ((9, 0), -5), ((3, 12), 1795798000), ((18,), 1795798480)]
    for i, path in enumerate(g.capture_paths()[:4]):
        out.append(bytes([8, 0]) + to_pcapng(path.read_bytes(), big=bool(i & 1),
                                             tsresol=stamps[i][0], tsoffset=stamps[i][1],
                                             extra_every=5))
    for i, lt in enumerate(LINKTYPES):
        frames = [f for _ts, f in g.golden_frames(lt)][:24]
        out.append(bytes([5, i]) + b"".join(struct.pack("!H", len(f)) + f for f in frames))
        out.append(bytes([7, i]) + b"".join(struct.pack("!H", len(f)) + f for f in frames))
    # every capture whole, for the decoder and the whole engine: the 24 frames above are all
    # of the first capture (alerts only), and certificates, ServerKeyExchange, a client's
    # certificate were never reached by the engine target
    for path in g.capture_paths():
        lt, frames = g.read_frames(path)
        if lt == LINKTYPES[0] and all(len(f) < 0x10000 for _ts, f in frames):
            body = b"".join(struct.pack("!H", len(f)) + f for _ts, f in frames)
            out += [bytes([5, 0]) + body, bytes([7, 0]) + body, bytes([9, 0x30]) + body,
                    bytes([10, 0x03]) + body, bytes([10, 0x45]) + body]
    # issue 15: tunnelled frames (Ethernet), from the real captures of each encapsulation
    import dpkt
    for path in sorted((ROOT / "tests" / "data" / "realworld").glob("encap-*.pcap")):
        with open(path, "rb") as fh:
            frames = [bytes(f) for _ts, f in dpkt.pcap.Reader(fh)][:24]
        out.append(bytes([5, 0]) + b"".join(struct.pack("!H", len(f)) + f for f in frames))
        out.append(bytes([7, 0]) + b"".join(struct.pack("!H", len(f)) + f for f in frames))
    for path in g.capture_paths():
        segs = g.tcp_segments(path)
        out.append(bytes([6, 0]) + b"".join(struct.pack("!H", (d << 15) | len(p)) + p
                                            for d, p in segs if len(p) < 0x8000))
    return out


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--make-seeds":
        target = Path(argv[2])
        target.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(seeds()):
            (target / ("seed-%03d" % i)).write_bytes(s)
        return
    import atheris
    atheris.instrument_all()            # coverage of the twin and the TLS state machine
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
