"""Bounded flow table and per-direction TCP reassembly of the handshake phase.

Sans-I/O: :meth:`FlowTable.process` takes the segment tuples of the wire module's
``PacketDecoder`` and returns the connections that finished, as
``(raw_summary, [(sha256, der), ...])`` pairs.  Time is whatever the packets say.

The table is given its engine -- the wire module, the TLS reader and the session record of one
build (:class:`cext.wire.Engine`) -- and imports none of them: ``FlowTable(engine)``.

A flow is finished — summarized once, freed, and its key put in the bounded ``done`` set so
the decoder drops the rest of its packets in C — when its handshake is over (encrypted
traffic both ways), on RST, once both sides sent FIN, after ``idle_timeout`` seconds of
silence, when the table is full (oldest first), or at the end of the input.
"""
from __future__ import annotations

import ipaddress
import logging
from collections import deque

from cext.events import CLIENT, MAX_HANDSHAKE, SERVER

__all__ = ["FlowTable", "Flow", "endpoint_text"]

log = logging.getLogger(__name__)

MASK = 0xFFFFFFFF
HALF = 1 << 31
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: ciphertext runs shorter than this are parsed through, longer ones skipped in C
#: (``FlowTable(skip_min=...)``)
SKIP_MIN = 4096
#: give up on a flow that carried this much non-TLS payload without any TLS
MAX_PLAINTEXT = 16 * 1024


_ENDPOINTS: dict = {}


def endpoint_text(raw: bytes) -> str:
    """6 or 18 raw bytes (address + port) -> ``ip:port`` / ``[ip6]:port`` (memoized)."""
    text = _ENDPOINTS.get(raw)
    if text is None:
        if len(_ENDPOINTS) > 65536:
            _ENDPOINTS.clear()
        text = _ENDPOINTS[raw] = _endpoint_text(raw)
    return text


def _endpoint_text(raw: bytes) -> str:
    port = (raw[-2] << 8) | raw[-1]
    if len(raw) == 6:
        return "%d.%d.%d.%d:%d" % (raw[0], raw[1], raw[2], raw[3], port)
    return "[%s]:%d" % (ipaddress.IPv6Address(bytes(raw[:16])), port)


class Flow:
    """One TCP connection: roles, reassembly state, the TLS reader and the session record."""

    __slots__ = ("key", "client_lo", "next_seq", "ooo", "ooo_bytes", "conn", "session",
                 "last", "first", "reset_at")

    def __init__(self, key: bytes, client_lo: bool, ts: float) -> None:
        self.key = key
        self.client_lo = client_lo
        self.next_seq = [None, None]
        self.ooo = None                 # [dict, dict] once a segment arrives out of order
        self.ooo_bytes = [0, 0]
        self.conn = None                # TLSConnection, created with the first payload
        self.session = None
        self.first = ts
        self.last = ts
        self.reset_at = -1.0            # issue 15: the client's RST, while lingering after it

    def endpoints(self):
        half = len(self.key) // 2
        lo, hi = self.key[:half], self.key[half:]
        return (lo, hi) if self.client_lo else (hi, lo)


class FlowTable:
    """See the module docstring.  ``stats`` counts what happened, Zeek-weird style."""

    def __init__(self, engine, max_flows: int = 262_144, idle_timeout: float = 120.0,
                 max_ooo_bytes: int = 256 * 1024, max_ooo_segments: int = 64,
                 max_done: int = 1_048_576, max_handshake: int = MAX_HANDSHAKE,
                 close_linger: float = 1.0, skip_min: int = SKIP_MIN) -> None:
        #: ``engine.wire`` / ``.tls`` / ``.session``: one build's modules (the compiled table
        #: holds its readers and sessions as C types: only the compiled ones fit)
        self.wire = engine.wire
        self._new_connection = engine.tls.TLSConnection
        self._new_session = engine.session.Session
        _check_engine(self)
        self.flows: dict = {}
        self.done: dict = {}
        # creation order of flows / finishing order of done keys, for oldest-first eviction
        # in O(1): walking the dicts from their start would step over the holes that
        # deletions leave at the front (quadratic under a SYN flood)
        self._flow_order: deque = deque()
        self._done_order: deque = deque()
        self.skip: dict = {}
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.close_linger = min(close_linger, idle_timeout)
        self.max_ooo_bytes = max_ooo_bytes
        self.max_ooo_segments = max_ooo_segments
        self.max_done = max_done
        self.max_handshake = max_handshake
        self.skip_min = skip_min
        self.now = 0.0
        self._next_expiry = None
        self._out: list = []
        self.stats = {
            "flows_created": 0, "flows_not_tls": 0, "flows_evicted": 0, "flows_timed_out": 0,
            "summaries": 0, "retransmissions": 0, "out_of_order": 0, "gaps": 0,
            "protocol_errors": 0, "internal_errors": 0, "flows_half_closed": 0,
        }
        self.reasons: dict = {}

    # -- input -----------------------------------------------------------------------------------
    def process(self, segments) -> list:
        """Handle a list of decoder segments; returns the finished connections."""
        out = self._out = []
        segment = self.segment
        for seg in segments:
            segment(*seg)
        return self.end_batch()

    def segment(self, ts, key, from_lo, flags, seq, payload, truncated) -> None:
        """Handle one decoder segment (the decoder's per-segment sink: what this sets up,
        such as a finished flow or a ciphertext skip, applies to the rest of its batch)."""
        flow = self.flows.get(key)
        if flow is None:
            if key in self.done and not (flags & SYN and not flags & ACK):
                return                          # finished earlier in this batch
            flow = self._new_flow(key, from_lo, flags, payload, ts, self._out)
            if flow is None:
                return
        self.now = ts
        out = self._out
        if flow.reset_at >= 0.0 and ts - flow.reset_at >= self.close_linger:
            # issue 15: the grace after the client's RST is over, data or not
            self._finish(flow, "reset", out)
            return
        try:                                    # one guard per packet
            d = CLIENT if from_lo == flow.client_lo else SERVER
            flow.last = ts
            if flags & SYN:
                seq = (seq + 1) & MASK
                flow.next_seq[d] = seq
            sess = flow.session
            if payload:
                if sess is None:
                    sess = flow.session = self._new_session(flow.first)
                conn = flow.conn
                if conn is None:
                    conn = flow.conn = self._new_connection(self.wire, self.max_handshake)
                sess.end = ts
                nseq = flow.next_seq
                nxt = nseq[d]
                if flow.ooo is None and (nxt == seq or nxt is None):    # in order: fast path
                    nseq[d] = (seq + len(payload)) & MASK
                    error = conn.feed_into(d, payload, sess.on_event)
                    if error is not None:
                        self._protocol_error(sess, error)
                else:
                    self._segment(flow, d, seq, payload, ts)
                if conn.dirs[d].skip >= self.skip_min:
                    self._skip_ciphertext(flow, conn, d, from_lo)
            if truncated:
                self._gap(flow, d)
                if sess is not None:
                    sess.truncated = True
            if flags & (RST | FIN):
                if sess is None:
                    sess = flow.session = self._new_session(flow.first)
                sess.end = ts
                if flags & RST:
                    sess.tcp_rst(d)
                    # issue 15: the client reset while a server message was still arriving
                    # (the reader holds part of it): keep reading what is in flight, for
                    # close_linger at most (above, and expire), instead of finishing now
                    if d == CLIENT and flow.conn is not None:
                        sd = flow.conn.dirs[SERVER]
                        if sd.error is None and (sd.buf or sd.hs):
                            if flow.reset_at < 0.0:
                                flow.reset_at = ts
                            return
                    self._finish(flow, "reset", out)
                    return
                sess.tcp_fin(d)
                if len(sess.fin) == 2:
                    self._finish(flow, "closed", out)
                    return
            if sess is not None:
                if sess.established:
                    if sess.handshake_over():
                        self._finish(flow, "established", out)
                elif not sess.history and flow.conn is not None \
                        and flow.conn.plaintext() > MAX_PLAINTEXT:
                    self._finish(flow, "not_tls", out)
        except Exception:
            # a bug, not bad input (that is a ProtocolError, handled above): count every
            # one, log the 1st, 2nd, 4th, 8th ... with its traceback -- a bug that hits every
            # flow must not turn into a traceback per flow (and the core reads no clock)
            n = self.stats["internal_errors"] = self.stats["internal_errors"] + 1
            if n & (n - 1) == 0:
                client, server = flow.endpoints()
                log.exception("internal error on flow %s -> %s (%d so far; logged at powers "
                              "of 2)", endpoint_text(client), endpoint_text(server), n)
            self._finish(flow, "incomplete", out)

    def begin_batch(self) -> None:
        self._out = []

    def end_batch(self) -> list:
        """Finish idle flows (once a second of capture time); return what finished."""
        out = self._out
        self._out = []
        if self._next_expiry is None:
            self._next_expiry = self.now + 1.0
        elif self.now >= self._next_expiry:
            self._next_expiry = self.now + 1.0
            self.expire(self.now, out)
        return out

    def expire(self, now: float, out: list | None = None) -> list:
        """Finish flows idle for longer than ``idle_timeout`` at time ``now``, and those
        quiet for ``close_linger`` after a FIN, a fatal alert or the client's RST (issue 15):
        a failed handshake whose other side never closes (half-closed) is reported in about
        a second, not after the idle timeout."""
        out = [] if out is None else out
        limit = now - self.idle_timeout
        linger = now - self.close_linger
        stale, ended, reset = [], [], []
        for f in self.flows.values():
            if f is None or f.last >= linger:
                continue
            if f.last < limit:
                stale.append(f)
            elif f.reset_at >= 0.0:             # issue 15: quiet since the client's RST
                reset.append(f)
            elif (s := f.session) is not None and (s.fin or s.fatal):
                ended.append(f)
        for f in stale:
            self.stats["flows_timed_out"] += 1
            self._finish(f, "timeout", out)
        for f in ended:
            self.stats["flows_half_closed"] += 1
            self._finish(f, "closed", out)
        for f in reset:
            self._finish(f, "reset", out)
        return out

    def flush(self, reason: str = "incomplete") -> list:
        """End of input: finish every flow."""
        out: list = []
        for f in list(self.flows.values()):
            if f is not None:
                self._finish(f, reason, out)
        self.flows.clear()
        return out

    # -- internals -------------------------------------------------------------------------------
    def _new_flow(self, key, from_lo, flags, payload, ts, out):
        if flags & SYN:
            client_lo = from_lo if not flags & ACK else not from_lo
        elif payload:
            role = _sender_role(payload)
            if role is None:
                self.flows.pop(key, None)       # the decoder's pending entry
                return None
            if role == CLIENT:
                client_lo = from_lo
            elif role == SERVER:
                client_lo = not from_lo
            else:   # an alert or an unknown record first: the lower port is the server
                half = len(key) // 2
                lo_port = (key[half - 2] << 8) | key[half - 1]
                hi_port = (key[-2] << 8) | key[-1]
                client_lo = lo_port > hi_port
        else:
            self.flows.pop(key, None)
            return None
        if len(self.flows) > self.max_flows:
            self._evict_oldest(out)
        flow = Flow(key, client_lo, ts)
        self.flows[key] = flow
        order = self._flow_order
        order.append((key, ts))             # not the flow: a finished one must be freed
        if len(order) > 2 * len(self.flows) + 1024:        # mostly finished flows: compact
            self._flow_order = deque((f.key, f.first) for f in self.flows.values()
                                     if f is not None)
        self.stats["flows_created"] += 1
        return flow

    def _evict_oldest(self, out) -> None:
        order, flows = self._flow_order, self.flows
        while order:
            key, first = order.popleft()
            oldest = flows.get(key)
            if oldest is not None and oldest.first == first:
                self.stats["flows_evicted"] += 1
                self._finish(oldest, "evicted", out)
                return

    def _skip_ciphertext(self, flow, conn, d, from_lo) -> None:
        """The rest of this ciphertext record is of no use: let the decoder drop it in C."""
        stop = (flow.next_seq[d] + conn.take_skip(d, self.skip_min)) & MASK
        flow.next_seq[d] = stop
        sk = self.skip.get(flow.key)
        if sk is None:
            sk = self.skip[flow.key] = [-1, -1]
        sk[0 if from_lo else 1] = stop

    def _protocol_error(self, sess, error) -> None:
        self.stats["protocol_errors"] += 1
        self.reasons[error.reason] = self.reasons.get(error.reason, 0) + 1
        sess.weird(error.reason)

    def _segment(self, flow, d, seq, data, ts) -> None:
        nxt = flow.next_seq[d]
        if nxt is None:
            nxt = seq
        delta = (seq - nxt) & MASK
        if delta == 0:
            self._deliver(flow, d, data, ts)
            flow.next_seq[d] = (nxt + len(data)) & MASK
            if flow.ooo is not None and flow.ooo[d]:
                self._drain(flow, d, ts)
        elif delta < HALF:                                      # ahead: hole before it
            self.stats["out_of_order"] += 1
            if flow.ooo is None:
                flow.ooo = [{}, {}]
            q = flow.ooo[d]
            if seq not in q or len(q[seq]) < len(data):
                flow.ooo_bytes[d] += len(data) - len(q.get(seq, b""))
                q[seq] = data
            if len(q) > self.max_ooo_segments or flow.ooo_bytes[d] > self.max_ooo_bytes:
                self._skip_hole(flow, d, ts)
        else:                                                   # behind: retransmission
            back = (nxt - seq) & MASK
            if back < len(data):
                self._deliver(flow, d, data[back:], ts)
                flow.next_seq[d] = (nxt + len(data) - back) & MASK
                if flow.ooo is not None and flow.ooo[d]:
                    self._drain(flow, d, ts)
            else:
                self.stats["retransmissions"] += 1
        if flow.next_seq[d] is None:
            flow.next_seq[d] = (seq + len(data)) & MASK

    def _drain(self, flow, d, ts) -> None:
        q = flow.ooo[d]
        while q:
            nxt = flow.next_seq[d]
            hit = None
            for s in q:
                if ((nxt - s) & MASK) < HALF:                   # starts at or before nxt
                    hit = s
                    break
            if hit is None:
                return
            data = q.pop(hit)
            flow.ooo_bytes[d] -= len(data)
            back = (nxt - hit) & MASK
            if back < len(data):
                self._deliver(flow, d, data[back:], ts)
                flow.next_seq[d] = (nxt + len(data) - back) & MASK

    def _skip_hole(self, flow, d, ts) -> None:
        """Too much buffered behind a hole: mark the gap, stop parsing this direction."""
        self._gap(flow, d)
        flow.ooo[d].clear()
        flow.ooo_bytes[d] = 0

    def _gap(self, flow, d) -> None:
        self.stats["gaps"] += 1
        if flow.conn is not None:
            flow.conn.receive_gap(d)
        if flow.session is not None:
            flow.session.gap(d)

    def _deliver(self, flow, d, data, ts) -> None:
        """Hand reassembled bytes to the TLS reader (slow path: after reordering)."""
        sess = flow.session
        sess.end = ts
        error = flow.conn.feed_into(d, data, sess.on_event)
        if error is not None:
            self._protocol_error(sess, error)

    def _mark_done(self, key: bytes) -> None:
        done, order = self.done, self._done_order
        done[key] = None
        order.append(key)
        if len(done) > self.max_done:
            while order:                    # oldest first; skip keys a new SYN reopened
                old = order.popleft()
                if old in done and old != key:
                    del done[old]
                    break
        if len(order) > 2 * len(done) + 1024:
            self._done_order = deque(done)

    def _finish(self, flow, reason, out) -> None:
        key = flow.key
        if self.flows.pop(key, None) is None:
            return
        self.skip.pop(key, None)
        sess = flow.session
        if sess is not None and not sess.seen_tls and flow.conn is not None \
                and flow.conn.dirs[CLIENT].hello:
            # issue 15: a ClientHello began but no handshake message came of it (cut short,
            # or its record or message length refused): a connection with a ClientHello is
            # always summarized
            sess.hello_unread()
        if sess is not None and sess.seen_tls:
            # the decoder drops the rest of this connection in C (a flow that never was TLS
            # needs no entry: its later packets do not start a TLS record)
            self._mark_done(key)
        if flow.ooo is not None and reason != "established":
            # bytes still queued behind a hole that never filled (not when the handshake
            # is over: what is queued then is later traffic, no longer watched)
            for d in (CLIENT, SERVER):
                if flow.ooo[d] and sess is not None:
                    sess.gap(d)
        if sess is None or not sess.seen_tls:
            self.stats["flows_not_tls"] += 1
            return
        lo, hi = flow.endpoints()
        self.stats["summaries"] += 1
        raw = sess.summary(endpoint_text(lo), endpoint_text(hi), reason)
        out.append((raw, sess.certificate_ders()))


def _sender_role(payload: bytes):
    """Who sent this first segment of a connection seen mid-stream (CLIENT / SERVER /
    None = not TLS / -1 = TLS but cannot tell)."""
    if len(payload) >= 6 and payload[0] == 0x16 and payload[1] == 3:
        if payload[5] == 1:
            return CLIENT
        if payload[5] == 2:
            return SERVER
        return -1
    if len(payload) >= 3 and payload[0] & 0x80 and payload[2] == 1:
        return CLIENT
    if len(payload) >= 2 and payload[0] == 0x15 and payload[1] == 3:
        return -1
    return None


def _check_engine(table) -> None:
    """Fail at construction, not per packet inside the guard, when the engine's reader and
    session are not the types this build of the table holds (a compiled table given the twin's
    classes raises TypeError here)."""
    flow = Flow(b"", True, 0.0)
    flow.conn = table._new_connection(table.wire)
    flow.session = table._new_session(0.0)
