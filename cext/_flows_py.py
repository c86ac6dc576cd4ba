"""Bounded flow table and per-direction TCP reassembly of the handshake phase.

Sans-I/O: the table reads the segments of its engine's ``PacketDecoder`` (:meth:`decoded`,
after the caller began a frame source: a pcapy-ng batch, pcap records in memory, one frame)
and returns the connections that finished, as ``(raw_summary, [(sha256, der), ...])``
pairs.  Time is whatever the packets say.

The table is given its engine -- the wire module, the TLS reader and the session record of one
build (:class:`cext.wire.Engine`) -- and imports none of them: ``FlowTable(engine)``.

One dict, ``flows``, maps a connection's key to its entry: a :class:`Flow`, ``None`` while
the decoder hands the table a connection's first packet, or a ``Done`` once the connection
was summarized.  The decoder looks each packet's key up once and hands the entry over; it
drops the packets of ``Done`` entries itself.

A flow is finished -- summarized once and freed, its key left as ``Done`` -- when its
handshake is over (encrypted traffic both ways), on RST, once both sides sent FIN, after
``idle_timeout`` seconds of silence, when the table is full (oldest first), or at the end of
the input.  A ``Done`` key is forgotten after ``idle_timeout`` seconds without a packet (and
beyond ``max_done`` of them, oldest first): memory follows the connections of the last
``idle_timeout`` seconds, not the length of the capture.

The bytes the flows hold for reassembly -- their readers' incomplete records and handshake
messages, segments queued behind a hole, the certificates their sessions keep until the
summary -- have one budget for the whole table,
``max_buffered`` (a memcap, as Suricata's stream reassembly has): each flow may hold up to
about 1.3 MiB a direction, which ``max_flows`` alone bounds at hundreds of GiB.  Past the
budget, the flows holding the most give up what they hold (a gap in a direction that held
bytes, their certificates, the weird ``reassembly_memcap``, counted in ``stats``) until the
table holds 3/4 of it; they are summarized as usual.
"""
from __future__ import annotations

import logging
from collections import deque
from operator import attrgetter

from cext.errors import reason as _reason
from cext.events import CLIENT, MAX_HANDSHAKE, SERVER

__all__ = ["FlowTable", "Flow"]

log = logging.getLogger(__name__)

MASK = 0xFFFFFFFF
HALF = 1 << 31
#: a RST whose sequence number is further than this from the sender's next byte is not taken
#: (a blind spoof lands there 99.95 % of the time; a capture that lost some of the sender's
#: data still sees its RST)
RST_WINDOW = 1 << 20
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: ciphertext runs shorter than this are parsed through, longer ones skipped in C
#: (``FlowTable(skip_min=...)``)
SKIP_MIN = 4096
#: give up on a flow that carried this much non-TLS payload without any TLS
MAX_PLAINTEXT = 16 * 1024
#: the default budget of the bytes all flows of a table hold for reassembly
MAX_BUFFERED = 128 << 20
_HELD = attrgetter("held")


class Flow:
    """One TCP connection: roles, reassembly state, the TLS reader and the session record."""

    __slots__ = ("key", "client_lo", "nseq", "has_seq", "isn", "has_isn", "ooo", "ooo_bytes",
                 "conn", "session", "last", "first", "serial", "created", "reset_at", "held")

    def __init__(self, key: bytes, client_lo: bool, ts: float, serial: int = 0,
                 created: int = 0) -> None:
        self.key = key
        self.client_lo = client_lo
        self.nseq = [0, 0]              # next expected sequence number per direction
        self.has_seq = [False, False]   # ... once known
        self.isn = 0                    # the client's initial sequence number (its SYN's) ...
        self.has_isn = False            # ... once seen
        self.ooo = None                 # [dict, dict] once a segment arrives out of order
        self.ooo_bytes = [0, 0]
        self.conn = None                # TLSConnection, created with the first payload
        self.session = None
        self.first = ts
        self.last = ts
        self.serial = serial            # creation order in its table
        self.created = created          # the frame that created it (its decoder's count)
        self.reset_at = -1.0            # issue 15: the client's RST, while lingering after it
        self.held = 0                   # bytes held for reassembly, as the table last counted

    def endpoints(self):
        half = len(self.key) // 2
        lo, hi = self.key[:half], self.key[half:]
        return (lo, hi) if self.client_lo else (hi, lo)


class FlowTable:
    """See the module docstring.  ``stats`` counts what happened, Zeek-weird style."""

    def __init__(self, engine, max_flows: int = 262_144, idle_timeout: float = 120.0,
                 max_ooo_bytes: int = 256 * 1024, max_ooo_segments: int = 64,
                 max_done: int = 1_048_576, max_handshake: int = MAX_HANDSHAKE,
                 close_linger: float = 1.0, skip_min: int = SKIP_MIN, offers: int = 4096,
                 chains: int = 4096, max_buffered: int = MAX_BUFFERED) -> None:
        #: the engine's wire parser, reader and session (the compiled table holds its readers
        #: and sessions as C types: only the compiled ones fit)
        self.wire = engine.wire.Wire()
        self._done_type = engine.wire.Done
        self._skip_type = engine.wire.Skip
        self._new_connection = engine.tls.TLSConnection
        self._new_session = engine.session.Session
        #: the memos the sessions share (offers, certificate chains): this table's traffic
        self.caches = engine.session.Caches(self.wire, offers, chains)
        _check_engine(self)
        self.flows: dict = {}
        self.live = 0                   # Flow entries in ``flows``
        self.ndone = 0                  # Done entries in ``flows``
        self._serial = 0
        # creation order of flows, finishing order of done keys: oldest-first eviction and
        # the expiry walk in O(1) per entry (walking the dict would step over finished keys)
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
        #: the memcap: bytes all flows may hold for reassembly; what they hold now
        self.max_buffered = max_buffered
        self.buffered = 0
        self.now = 0.0
        self._next_expiry = None
        self._out: list = []
        #: the decoder's count of the frame being handled
        self.frame = 0
        #: the clock that ends a batch: the latest time of a frame or segment
        self._max_ts = 0.0
        #: with ``ordered()``: each finished connection's place in the output of one table
        #: reading every connection (a table of one ``--jobs`` worker reads some)
        self.keys = None
        self._key = None
        self.stats = {
            "flows_created": 0, "flows_not_tls": 0, "flows_evicted": 0, "flows_timed_out": 0,
            "summaries": 0, "retransmissions": 0, "out_of_order": 0, "gaps": 0,
            "protocol_errors": 0, "internal_errors": 0, "flows_half_closed": 0,
            "reassembly_memcap": 0, "syn_inside_connection": 0, "rst_out_of_window": 0,
        }
        self.reasons: dict = {}

    # -- input -----------------------------------------------------------------------------------
    def decoded(self, dec) -> list:
        """Handle the segments of ``dec``'s current frame source (this table's decoder; the
        caller began the source), then end the batch: returns the finished connections.
        What a segment changes (a finished flow, a ciphertext skip) applies to the next.

        The batch ends at the time of its latest frame (``dec.batch_max_ts``), whether or not
        the frame gave this table a segment: every table reading the same frames (``--jobs``
        workers, each keeping some connections) has the same clock without asking the
        others."""
        self._out = []
        if self.keys is not None:
            self.keys = []
        while dec.next():
            self.frame = dec.frames
            self._segment(dec.entry, dec.ts, dec.key, dec.from_lo, dec.flags, dec.seq,
                          dec.payload, dec.truncated)
        self.frame = dec.frames
        if dec.batch_max_ts > self._max_ts:
            self._max_ts = dec.batch_max_ts
        return self.end_batch()

    def ordered(self) -> None:
        """Keep :attr:`keys`: for each connection :meth:`decoded` and :meth:`flush` return,
        a key that sorts the outputs of several tables (each reading some connections of the
        same frames, ``--jobs``) into the order one table reading them all gives."""
        self.keys = []

    def process(self, segments) -> list:
        """Handle a list of decoder segment tuples; returns the finished connections."""
        self._out = []
        for seg in segments:
            self.segment(*seg)
        return self.end_batch()

    def segment(self, ts, key, from_lo, flags, seq, payload, truncated) -> None:
        """Handle one decoder segment tuple."""
        self._segment(self.flows.get(key), ts, key, from_lo, flags, seq, payload, truncated)

    def _segment(self, entry, ts, key, from_lo, flags, seq, payload, truncated) -> None:
        if entry is None or type(entry) is self._done_type:
            if entry is not None:
                if not (flags & SYN and not flags & ACK):
                    return                      # finished earlier in this batch
                entry.alive = False             # a new connection on a finished 5-tuple
                self.ndone -= 1
            flow = self._new_flow(key, from_lo, flags, payload, ts, self._out)
            if flow is None:
                return
        else:
            flow = entry
        self.now = ts
        if self.keys is not None:
            self._key = None            # this segment's: made by _finish if it finishes one
        out = self._out
        if flow.reset_at >= 0.0 and ts - flow.reset_at >= self.close_linger:
            # issue 15: the grace after the client's RST is over, data or not
            self._finish(flow, "reset", out)
            return
        try:                                    # one guard per packet
            d = CLIENT if from_lo == flow.client_lo else SERVER
            flow.last = ts
            if flags & SYN:
                if d == CLIENT and not flags & ACK and flow.conn is not None \
                        and not self._syn_copy(flow, seq):
                    # the client's SYN once data flowed, not a copy of its first one: a new
                    # connection on the 5-tuple (the eBPF filter starts over too); the old
                    # one ends
                    self._finish(flow, "incomplete", out)
                    self._segment(self.flows.get(key), ts, key, from_lo, flags, seq, payload,
                                  truncated)
                    return
                fresh = flow.conn is None or not flow.has_seq[d]
                if fresh and d == CLIENT and not flags & ACK:
                    flow.isn = seq
                    flow.has_isn = True
                seq = (seq + 1) & MASK          # (data in a SYN, TFO, begins after it)
                if fresh:
                    flow.nseq[d] = seq
                    flow.has_seq[d] = True
                else:
                    # once the connection carries data, another SYN -- a duplicate from a SPAN
                    # port or a reordering capture, a SYN bit on a later segment -- does not
                    # move its sequence, as a real stack ignores it (RFC 5961 4.2); the eBPF
                    # filter does the same
                    self.stats["syn_inside_connection"] += 1
            sess = flow.session
            if payload:
                if sess is None:
                    sess = flow.session = self._new_session(flow.first, self.caches)
                conn = flow.conn
                if conn is None:
                    conn = flow.conn = self._new_connection(self.wire, sess,
                                                            self.max_handshake)
                sess.end = ts
                n = len(payload)
                if flow.ooo is None and (flow.nseq[d] == seq or not flow.has_seq[d]):
                    flow.nseq[d] = (seq + n) & MASK         # in order: the fast path
                    flow.has_seq[d] = True
                    status = conn.feed_at(d, payload, 0, n)
                    if status:
                        self._protocol_error(sess, status)
                else:
                    self._reassemble(flow, d, seq, payload, ts)
                if conn.pending_skip(d) >= self.skip_min:
                    self._skip_ciphertext(flow, conn, d, from_lo)
            if truncated:
                self._gap(flow, d)
                if sess is not None:
                    sess.truncated = True
            if payload or truncated:
                self._account(flow)
            if flags & RST and flow.has_seq[d] \
                    and ((seq - flow.nseq[d] + RST_WINDOW) & MASK) > 2 * RST_WINDOW:
                # a RST far from where the sender's data is (a blind spoof; RFC 5961 3): a real
                # stack ignores it, and so does the eBPF filter
                self.stats["rst_out_of_window"] += 1
                flags &= ~RST
            if flags & (RST | FIN):
                if sess is None:
                    sess = flow.session = self._new_session(flow.first, self.caches)
                sess.end = ts
                if flags & RST:
                    sess.tcp_rst(d)
                    # issue 15: the client reset while a server message was still arriving
                    # (the reader holds part of it): keep reading what is in flight, for
                    # close_linger at most (above, and expire), instead of finishing now
                    if d == CLIENT and flow.conn is not None:
                        sd = flow.conn.dirs[SERVER]
                        if not sd.error and (sd.buf or sd.hs):
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
            # a bug, not bad input (that is an error status, handled above): count every
            # one, log the 1st, 2nd, 4th, 8th ... with its traceback -- a bug that hits every
            # flow must not turn into a traceback per flow (and the core reads no clock)
            n = self.stats["internal_errors"] = self.stats["internal_errors"] + 1
            if n & (n - 1) == 0:
                client, server = flow.endpoints()
                log.exception("internal error on flow %s -> %s (%d so far; logged at powers "
                              "of 2)", self.wire.endpoint_text(client),
                              self.wire.endpoint_text(server), n)
            self._finish(flow, "incomplete", out)

    def begin_batch(self) -> None:
        self._out = []

    def end_batch(self) -> list:
        """Finish idle flows (once a second of capture time); return what finished."""
        out = self._out
        self._out = []
        if self.now > self._max_ts:
            self._max_ts = self.now
        clock = self._max_ts
        if self._next_expiry is None:
            self._next_expiry = clock + 1.0
        elif clock >= self._next_expiry:
            self._next_expiry = clock + 1.0
            self.now = clock
            self.expire(clock, out)
        return out

    def expire(self, now: float, out: list | None = None) -> list:
        """Finish flows idle for longer than ``idle_timeout`` at time ``now``, and those
        quiet for ``close_linger`` after a FIN, a fatal alert or the client's RST (issue 15):
        a failed handshake whose other side never closes (half-closed) is reported in about
        a second, not after the idle timeout.  Forget finished keys without a packet for
        ``idle_timeout``."""
        out = [] if out is None else out
        limit = now - self.idle_timeout
        linger = now - self.close_linger
        stale, ended, reset = [], [], []
        for f in self._current():
            if f.last >= linger:
                continue
            if f.last < limit:
                stale.append(f)
            elif f.reset_at >= 0.0:             # issue 15: quiet since the client's RST
                reset.append(f)
            elif (s := f.session) is not None and (s.fin or s.fatal):
                ended.append(f)
        major = 4 * self.frame + 2
        for f in stale:
            self.stats["flows_timed_out"] += 1
            self._key = (major, 0, f.created)
            self._finish(f, "timeout", out)
        for f in ended:
            self.stats["flows_half_closed"] += 1
            self._key = (major, 1, f.created)
            self._finish(f, "closed", out)
        for f in reset:
            self._key = (major, 2, f.created)
            self._finish(f, "reset", out)
        self._forget_done(limit, now)
        return out

    def flush(self, reason: str = "incomplete") -> list:
        """End of input: finish every flow."""
        out: list = []
        if self.keys is not None:
            self.keys = []
        for f in self._current():
            self._key = (1 << 62, 0, f.created)
            self._finish(f, reason, out)
        for k in [k for k, v in self.flows.items() if v is None]:
            del self.flows[k]
        return out

    # -- internals -------------------------------------------------------------------------------
    def _current(self) -> list:
        """The live flows, oldest first."""
        flows = self.flows
        out = []
        for key, serial in self._flow_order:
            f = flows.get(key)
            if f is not None and type(f) is Flow and f.serial == serial:
                out.append(f)
        return out

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
        if self.live >= self.max_flows:
            if self.keys is not None:
                self._key = (4 * self.frame, 0, 0)
            self._evict_oldest(out)
        self._serial += 1
        flow = Flow(key, client_lo, ts, self._serial, self.frame)
        self.flows[key] = flow
        self.live += 1
        order = self._flow_order
        order.append((key, self._serial))   # not the flow: a finished one must be freed
        if len(order) > 2 * self.live + 1024:               # mostly finished flows: compact
            flows = self.flows
            self._flow_order = deque(
                (k, s) for k, s in order
                if (f := flows.get(k)) is not None and type(f) is Flow and f.serial == s)
        self.stats["flows_created"] += 1
        return flow

    def _evict_oldest(self, out) -> None:
        order, flows = self._flow_order, self.flows
        while order:
            key, serial = order.popleft()
            oldest = flows.get(key)
            if oldest is not None and type(oldest) is Flow and oldest.serial == serial:
                self.stats["flows_evicted"] += 1
                self._finish(oldest, "evicted", out)
                return

    def _skip_ciphertext(self, flow, conn, d, from_lo) -> None:
        """The rest of this ciphertext record is of no use: let the decoder drop it in C."""
        stop = (flow.nseq[d] + conn.take_skip(d, self.skip_min)) & MASK
        flow.nseq[d] = stop
        sk = self.skip.get(flow.key)
        if sk is None:
            sk = self.skip[flow.key] = self._skip_type()
        if from_lo:
            sk.lo = stop
        else:
            sk.hi = stop

    def _syn_copy(self, flow, seq) -> bool:
        """The client's SYN ``seq`` is a copy of its connection's first: the same ISN, or (none
        seen: a flow met mid-stream or at its SYN-ACK) one at most RST_WINDOW behind the data."""
        if flow.has_isn:
            return seq == flow.isn
        return flow.has_seq[CLIENT] and ((flow.nseq[CLIENT] - seq - 1) & MASK) <= RST_WINDOW

    def _protocol_error(self, sess, status) -> None:
        r = _reason(status)
        self.stats["protocol_errors"] += 1
        self.reasons[r] = self.reasons.get(r, 0) + 1
        sess.weird(r)

    def _reassemble(self, flow, d, seq, data, ts) -> None:
        """An out-of-order, retransmitted or overlapping segment (the slow path)."""
        nxt = flow.nseq[d] if flow.has_seq[d] else seq
        delta = (seq - nxt) & MASK
        if delta == 0:
            self._deliver(flow, d, data, ts)
            flow.nseq[d] = (nxt + len(data)) & MASK
            flow.has_seq[d] = True
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
                flow.nseq[d] = (nxt + len(data) - back) & MASK
                flow.has_seq[d] = True
                if flow.ooo is not None and flow.ooo[d]:
                    self._drain(flow, d, ts)
            else:
                self.stats["retransmissions"] += 1
        if not flow.has_seq[d]:
            flow.nseq[d] = (seq + len(data)) & MASK
            flow.has_seq[d] = True

    def _drain(self, flow, d, ts) -> None:
        q = flow.ooo[d]
        while q:
            nxt = flow.nseq[d]
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
                flow.nseq[d] = (nxt + len(data) - back) & MASK

    def _skip_hole(self, flow, d, ts) -> None:
        """Too much buffered behind a hole: mark the gap, stop parsing this direction."""
        self._gap(flow, d)
        flow.ooo[d].clear()
        flow.ooo_bytes[d] = 0

    def _account(self, flow) -> None:
        """Count again what ``flow`` holds for reassembly (after a segment); past the
        table's budget, shed."""
        held = flow.ooo_bytes[0] + flow.ooo_bytes[1]
        if flow.conn is not None:
            held += flow.conn.buffered()
        if flow.session is not None:
            held += flow.session.cert_bytes     # (a complete Certificate message, kept)
        self.buffered += held - flow.held
        flow.held = held
        if self.buffered > self.max_buffered:
            self._shed()

    def _shed(self) -> None:
        """Over ``max_buffered``: the flows holding the most give up what they hold, until
        the table holds at most 3/4 of it (so that shedding, a walk of the table, is rare)."""
        target = self.max_buffered - (self.max_buffered >> 2)
        for flow in sorted(self._current(), key=_HELD, reverse=True):
            if self.buffered <= target or not flow.held:
                break
            self._give_up(flow)

    def _give_up(self, flow) -> None:
        """Drop what ``flow`` holds for reassembly: a gap in each direction that held bytes
        (its reader stops there, as after lost packets), the weird ``reassembly_memcap``."""
        self.stats["reassembly_memcap"] += 1
        conn = flow.conn
        for d in (CLIENT, SERVER):
            if flow.ooo_bytes[d] or (conn is not None and conn.buffered_in(d)):
                if flow.ooo is not None:
                    flow.ooo[d].clear()
                    flow.ooo_bytes[d] = 0
                self._gap(flow, d)
        sess = flow.session
        if sess is not None:
            if sess.cert_bytes:
                sess.forget_certificates()
            sess.weird("reassembly_memcap")
        self.buffered -= flow.held
        flow.held = 0

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
        status = flow.conn.feed_at(d, data, 0, len(data))
        if status:
            self._protocol_error(sess, status)

    def _mark_done(self, key: bytes) -> None:
        """The connection of ``key`` was summarized: its later packets are dropped (in C)."""
        mark = self._done_type(self.now)
        self.flows[key] = mark
        self.ndone += 1
        order = self._done_order
        order.append((key, mark, self.now))
        if self.ndone > self.max_done:
            flows = self.flows
            while order:                    # oldest first; skip keys a new SYN reopened
                old, m, _t = order.popleft()
                if flows.get(old) is m:
                    m.alive = False
                    del flows[old]
                    self.ndone -= 1
                    break
        if len(order) > 2 * self.ndone + 1024:
            flows = self.flows
            self._done_order = deque(x for x in order if flows.get(x[0]) is x[1])

    def _forget_done(self, limit: float, now: float) -> None:
        """Finished keys without a packet since ``limit`` go (oldest queued first; one seen
        since it was queued goes to the back, stamped ``now``)."""
        order, flows = self._done_order, self.flows
        while order:
            key, mark, queued = order[0]
            if queued >= limit:
                return
            order.popleft()
            if flows.get(key) is not mark:
                continue                    # reopened or evicted
            if mark.last < limit:
                mark.alive = False
                del flows[key]
                self.ndone -= 1
            else:
                order.append((key, mark, now))

    def _finish(self, flow, reason, out) -> None:
        key = flow.key
        if self.flows.get(key) is not flow:
            return
        self.live -= 1
        self.buffered -= flow.held
        flow.held = 0
        sk = self.skip.pop(key, None)
        if sk is not None:
            sk.alive = False
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
        else:
            del self.flows[key]
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
        wire = self.wire
        raw = sess.summary(wire.endpoint_text(lo), wire.endpoint_text(hi), reason)
        out.append((raw, sess.certificate_ders()))
        if self.keys is not None:
            key = self._key
            self.keys.append(key if key is not None else (4 * self.frame + 1, 0, 0))

    def done_keys(self) -> list:
        """The keys of finished connections still remembered, oldest first."""
        flows = self.flows
        return [k for k, m, _t in self._done_order if flows.get(k) is m]


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
    flow.session = table._new_session(0.0, table.caches)
    flow.conn = table._new_connection(table.wire, flow.session)
