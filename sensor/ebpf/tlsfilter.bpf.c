// SPDX-License-Identifier: GPL-2.0
/*
 * tlsdiag in-kernel handshake filter: a socket filter (SO_ATTACH_BPF) on the sensor's libpcap
 * capture socket.  It passes a packet to user space only when the sensor's engine can still use
 * it, and drops the rest in the kernel.  See sensor/ebpf/__init__.py for the design; in short:
 *
 * - every TCP segment of a flow passes until the flow is "over" as the engine itself defines it
 *   (cext/_session_py.py Session.handshake_over, fed by cext/_tls_py.py TLSConnection and the
 *   flow table in cext/_flows_py.py).  The program keeps the same per-direction record framing
 *   state the engine keeps (record boundaries by TCP sequence number, never by segment start),
 *   the same counters (ChangeCipherSpec, application_data seen, encrypted records per side
 *   excluding probable encrypted alerts), and decides "over" at the same packet.
 * - what the engine's packet decoder (cext/_wire_py.py PacketDecoder) drops before the flow
 *   table is dropped here too: pure ACKs, and the ciphertext segments the flow table told it to
 *   skip (the rest of an encrypted record of >= skip_min bytes once its header was read).
 * - once over (or reset, or both FINs), every packet of the flow is dropped except a SYN that
 *   reopens the 5-tuple.
 * - whatever this program cannot follow exactly (reordering, a plaintext preamble, SSLv2
 *   framing, a ServerHello split across segments, ...) makes the flow LOST: it then passes
 *   everything, as libpcap would, up to a per-flow byte/packet budget (the safety net).
 *
 * Built with clang -target bpf against the UAPI headers (no vmlinux.h, no CO-RE relocations:
 * the program reads only packet bytes and __sk_buff fields, so it needs no kernel BTF).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* ---- configuration (one ARRAY entry, written by the loader; layout mirrored in capture.py) */
#define L2_ETHERNET 0      /* data starts at an Ethernet header (SOCK_RAW on Ethernet, lo) */
#define L2_NONE 1          /* data starts at the IP header (SOCK_DGRAM "any", tun, raw IP) */

#define CFG_PORTS 1        /* only TCP with a port in ports[] */
#define CFG_HOSTS 2        /* only packets to or from an address in the hosts map */

struct config {
	__u32 l2;
	__u32 flags;
	__u32 lo_ifindex;      /* loopback: drop PACKET_OUTGOING copies, as libpcap does */
	__u32 snaplen;
	__u32 skip_min;        /* the flow table's skip_min (cext/_flows_py.py SKIP_MIN) */
	__u32 budget_packets;  /* payload packets passed per flow before it is cut */
	__u64 budget_bytes;    /* payload bytes passed per flow before it is cut */
	__u64 ports[1024];     /* bitmap of TCP ports */
};

/* ---- counters (PERCPU_ARRAY; names in capture.py COUNTERS, same order) */
enum {
	C_SEEN, C_PASSED, C_DROP_FILTER, C_DROP_NOPAYLOAD, C_DROP_SKIP, C_DROP_DONE, C_DROP_BUDGET,
	C_FLOWS_NEW, C_FLOWS_MIDSTREAM, C_FLOWS_REOPENED, C_FLOWS_OVER, C_FLOWS_CLOSED,
	C_FLOWS_MARKED, C_FLOWS_LOST, C_FLOWS_BUDGET, C_UNPARSED, C_LOOPBACK_OUT, C_MAP_FAIL,
	C_RECORDS, C_TUNNEL, C_CLOSED_LINGER,
	C_MAX
};

/* ---- flow state */
struct flow_key {
	__u8 lo[16];           /* bytewise-lower endpoint (address + port), as the engine's key */
	__u8 hi[16];
	__u16 lo_port;         /* network order */
	__u16 hi_port;
	__u32 family;          /* 4 or 6 */
};

/* per direction: the engine's flow.next_seq[d] and TLSConnection._Direction, reduced */
#define D_HAVE_SEQ 0x01    /* next_seq known */
#define D_STARTED 0x02     /* first record header seen (hdr_seq valid) */
#define D_ENC 0x04         /* after this side's ChangeCipherSpec (TLS <= 1.2) */
#define D_ERR 0x08         /* the engine stopped parsing this side (framing error) */
#define D_SKIP 0x10        /* skip_end valid: the decoder drops segments ending at or before it */
#define D_FIN 0x20
#define D_PEND_SH 0x40     /* the pending record holds a ServerHello: its result in pend_sh */

struct dir_state {
	__u32 next_seq;        /* next in-order payload byte */
	__u32 hdr_seq;         /* where the next record header starts */
	__u32 skip_end;
	__u16 pend_len;        /* a record the engine reports only when complete */
	__u8 pend_ct;          /* its content type; 0 = none */
	__u8 hdr_have;         /* bytes of a header split across segments, in hdr */
	__u32 hdr;             /* those bytes, the first in the low 8 bits */
	__u16 flags;
	__u16 pend_sh;         /* D_PEND_SH: the ServerHello's version, or SH_HRR_MARK */
};

#define S_ACTIVE 0         /* following the handshake exactly */
#define S_LOST 1           /* cannot follow: pass everything (budget) */
#define S_OVER 2           /* the engine is done with it: drop all but a reopening SYN */
#define S_CLOSED 3         /* RST or both FINs: likewise */

/* session facts (cext/_session_py.py Session) */
#define F_CONN_TLS13 0x01  /* TLSConnection.tls13 (ServerHello or HelloRetryRequest) */
#define F_SESS_TLS13 0x02  /* Session._tls13 (from the ServerHello only) */
#define F_SH_SEEN 0x04
#define F_CCS_C 0x08
#define F_CCS_S 0x10
#define F_APP_C 0x20
#define F_APP_S 0x40
#define F_EST 0x80

struct flow {
	__u64 created_ns;      /* CLOCK_MONOTONIC when this connection's state was created */
	__u64 bytes;           /* payload bytes passed */
	__u32 packets;         /* payload packets passed */
	__u32 client_isn;
	struct dir_state d[2]; /* [0] client, [1] server */
	__u16 counts[2];       /* Session._counts */
	__u16 at_est[2];       /* Session._at_established */
	__u8 state;
	__u8 client_is_lo;
	__u8 f;
	__u8 have_isn;
	__u8 dir;              /* the current packet's direction (see tls_filter) */
	__u8 pad[3];
	__u64 closed_ns;       /* CLOCK_MONOTONIC when it became S_CLOSED */
};

/* a global in its own data section (libbpf map ".data.config"): read without a helper call */
struct config cfg SEC(".data.config") = { .snaplen = 65535, .skip_min = 4096,
					   .budget_packets = 1024, .budget_bytes = 4 << 20,
					   .lo_ifindex = 1 };

struct counters {
	__u64 c[C_MAX];
};

/* one entry per CPU: looked up once per frame */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);            /* the loader sets the configured size */
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

/* a new flow's value is built here, not on the 512-byte stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow);
} scratch SEC(".maps");

/* user space: "the engine finished this flow at <end>" (CLOCK_MONOTONIC ns) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow_key);
	__type(value, __u64);
} marks SEC(".maps");

/* CFG_HOSTS: addresses (16 bytes; IPv4 in the first 4, rest zero) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6_addr);
	__type(value, __u8);
} hosts SEC(".maps");

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define CLIENT 0
#define SERVER 1

#define MAX_RECORD ((1 << 14) + 2048)  /* cext wire.MAX_RECORD */
#define PROBABLE_ALERT_MAX 24          /* cext/_session_py.py */
#define AFTER_ESTABLISHED 8            /* cext/_session_py.py */
#define MAX_RECORDS_PER_SEGMENT 512    /* more in one frame (offload, tiny records): LOST */
#define MAX_SH_EXTENSIONS 32

/* cnt->c[i]++ as one load/add/store with an immediate offset: clang would otherwise merge
 * bumps on different branches into one address computation whose constant depends on the
 * path, which the verifier refuses without CAP_PERFMON */
#define COUNT(cnt, i)                                                                      \
	asm volatile("r0 = *(u64 *)(%[p] + %[o])\n\t"                                      \
		     "r0 += 1\n\t"                                                            \
		     "*(u64 *)(%[p] + %[o]) = r0"                                              \
		     : : [p] "r"(cnt), [o] "i"((i) * 8) : "r0", "memory")

/* One packet byte into *out.  Written for the verifier without CAP_PERFMON (Spectre v1
 * hardening): a fresh 8-byte stack slot, and no variable-offset stack or map-value pointers --
 * bytes are assembled with shifts instead of indexed arrays throughout. */
static __always_inline int load_byte(struct __sk_buff *skb, __u32 off, __u32 *out)
{
	__u64 c = 0;
	if (bpf_skb_load_bytes(skb, off, &c, 1))
		return -1;
	*out = (__u32)(c & 0xFF);
	return 0;
}

/* seq a is at or before seq b (mod 2^32) */
static __always_inline int seq_le(__u32 a, __u32 b)
{
	return (__s32)(b - a) >= 0;
}

static __always_inline int is_tls13(__u32 v)
{
	/* proto.names.is_tls13 / cext _is_tls13 */
	return v == 0x0304 || (v >> 8) == 0x7F || v == 0x7E01 || v == 0x7E02 || v == 0xFB17 ||
	       v == 0xFB1A;
}

struct walk {
	struct __sk_buff *skb;
	struct flow *fl;
	struct dir_state *ds;  /* &fl->d[d] */
	struct counters *cnt;
	__u32 pay;             /* skb offset of the TCP payload */
	__u32 plen;
	__u32 seq;             /* sequence number of payload byte 0 */
	__u32 off;             /* first payload byte not yet delivered to the engine */
	__u32 d;               /* CLIENT / SERVER */
	__u32 stop;            /* set by the callback: 1 = walked to the end, 2 = LOST */
};

static __always_inline void lose(struct flow *fl, struct counters *cnt)
{
	if (fl->state == S_ACTIVE) {
		fl->state = S_LOST;
		COUNT(cnt, C_FLOWS_LOST);
	}
}

/* Session._encrypted_record */
static __always_inline void encrypted_record(struct flow *fl, __u32 d, __u32 ct, __u32 len)
{
	__u8 f = fl->f;
	if (ct == 21 || ((f & F_SESS_TLS13) && ct == 23 && len <= PROBABLE_ALERT_MAX &&
			 (d == CLIENT || (f & F_APP_S)))) {
		/* an encrypted alert (probably): not counted */
	} else if (d == CLIENT) {
		if (fl->counts[0] < 0xFFFF)
			fl->counts[0]++;
	} else if (fl->counts[1] < 0xFFFF) {
		fl->counts[1]++;
	}
	if (f & F_EST)
		return;
	if (f & F_SESS_TLS13) {
		if (ct == 23) {
			f |= d == CLIENT ? F_APP_C : F_APP_S;
			if ((f & F_APP_C) && (f & F_APP_S))
				f |= F_EST;
		}
	} else if ((f & F_CCS_C) && (f & F_CCS_S)) {
		f |= F_EST;
	}
	if ((f & F_EST) && !(fl->f & F_EST)) {
		fl->at_est[0] = fl->counts[0];
		fl->at_est[1] = fl->counts[1];
	}
	fl->f = f;
}

/* TLSConnection._parse: an incomplete record at the end of what was fed is reported at once
 * (and its bytes skipped) when it is encrypted */
static __always_inline int early_class(struct flow *fl, struct dir_state *ds, __u32 ct)
{
	return (ds->flags & D_ENC) || ct == 23 || ((fl->f & F_CONN_TLS13) && ct == 21);
}

static __always_inline int handshake_class(struct flow *fl, struct dir_state *ds, __u32 d,
					   __u32 ct)
{
	return ct == 22 && !(ds->flags & D_ENC) &&
	       !((fl->f & F_CONN_TLS13) && d == SERVER && (fl->f & F_SH_SEEN));
}

/* The ServerHello (or HelloRetryRequest) body at skb offset b, length len: wire.parse_server_hello
 * reduced to what the filter needs.  Returns (HRR ? SH_HRR : 0) | the negotiated version, or -1
 * for anything the engine might read differently (draft layouts, a malformed body): LOST.
 * A global function: the verifier checks it once, not per call site. */
#define SH_HRR 0x10000
#define SH_HRR_MARK 0xFFFF    /* pend_sh of a pending HelloRetryRequest (no real version) */
__noinline int sh_version(struct __sk_buff *skb, __u32 b, __u32 len)
{
	__u8 h[35];
	__u64 r;
	__u8 x[4];
	__u32 legacy, e, xe, selected = 0;
	int have_selected = 0;

	if (len < 36 || len > MAX_RECORD)
		return -1;
	if (bpf_skb_load_bytes(skb, b, h, sizeof(h)))
		return -1;
	legacy = ((__u32)h[0] << 8) | h[1];
	if ((legacy >> 8) == 0x7F && (legacy & 0xFF) < 22)
		return -1;
	/* RFC 8446 4.1.3: the HelloRetryRequest random */
	int hrr = 1;
	__builtin_memcpy(&r, h + 2, 8);
	hrr &= r == bpf_cpu_to_be64(0xcf21ad74e59a6111ULL);
	__builtin_memcpy(&r, h + 10, 8);
	hrr &= r == bpf_cpu_to_be64(0xbe1d8c021e65b891ULL);
	__builtin_memcpy(&r, h + 18, 8);
	hrr &= r == bpf_cpu_to_be64(0xc2a211167abb8c5eULL);
	__builtin_memcpy(&r, h + 26, 8);
	hrr &= r == bpf_cpu_to_be64(0x079e09e2c8a8339cULL);
	e = 35 + (__u32)h[34];              /* after the session id */
	if (e + 3 > len)
		return -1;
	e += 3;                             /* cipher suite, compression */
	if (e < len) {
		if (e + 2 > len)
			return -1;
		if (bpf_skb_load_bytes(skb, b + e, x, 2))
			return -1;
		xe = e + 2 + (((__u32)x[0] << 8) | x[1]);
		if (xe > len)
			return -1;
		e += 2;
		for (int i = 0; i < MAX_SH_EXTENSIONS; i++) {
			if (e >= xe)
				break;
			if (e + 4 > xe)
				return -1;
			if (bpf_skb_load_bytes(skb, b + e, x, 4))
				return -1;
			__u32 et = ((__u32)x[0] << 8) | x[1];
			__u32 el = ((__u32)x[2] << 8) | x[3];
			if (e + 4 + el > xe)
				return -1;
			if (et == 43) {
				if (el < 2)
					return -1;
				if (bpf_skb_load_bytes(skb, b + e + 4, x, 2))
					return -1;
				selected = ((__u32)x[0] << 8) | x[1];
				have_selected = 1;
			}
			e += 4 + el;
		}
		if (e < xe)
			return -1;          /* more extensions than we read */
	}
	return (hrr ? SH_HRR : 0) | (have_selected ? selected : legacy);
}

/* what reading a ServerHello (or HelloRetryRequest) does to the connection; 1 = a real one */
static __always_inline int apply_server_hello(struct flow *fl, __u32 hrr, __u32 version)
{
	if (hrr) {
		fl->f |= F_CONN_TLS13;
		return 0;
	}
	/* TLSConnection.tls13 and Session._tls13 from the ServerHello */
	fl->f |= F_SH_SEEN;
	if (is_tls13(version))
		fl->f |= F_CONN_TLS13 | F_SESS_TLS13;
	else
		fl->f &= ~(F_CONN_TLS13 | F_SESS_TLS13);
	return 1;
}

/* the server's handshake messages before its ServerHello, in one complete record whose body
 * is at skb offset b: find the ServerHello */
static __always_inline int server_handshake(struct walk *w, __u32 b, __u32 len)
{
	__u8 m[4];
	__u32 pos = 0;

	for (int i = 0; i < 4; i++) {
		if (pos >= len)
			return 0;
		if (pos + 4 > len)
			return -1;          /* a message header split across records */
		if (bpf_skb_load_bytes(w->skb, b + pos, m, 4))
			return -1;
		__u32 ml = ((__u32)m[1] << 16) | ((__u32)m[2] << 8) | m[3];
		if (pos + 4 + ml > len)
			return -1;          /* a message split across records */
		if (m[0] == 2) {
			int v = sh_version(w->skb, b + pos + 4, ml);
			if (v < 0)
				return -1;
			if (apply_server_hello(w->fl, v & SH_HRR, v & 0xFFFF))
				return 0;   /* the rest is read by the engine only */
		} else if (m[0] == 6) {
			return -1;          /* draft HelloRetryRequest */
		}
		pos += 4 + ml;
	}
	return pos >= len ? 0 : -1;
}

/* a record the engine reports when it is complete (cext/_tls_py.py _parse, the loop body);
 * b = skb offset of its body or 0 when the body is not in this packet */
static __always_inline int complete_record(struct walk *w, struct dir_state *ds, __u32 ct,
					   __u32 len, __u32 b)
{
	struct flow *fl = w->fl;
	__u32 d = w->d;

	if (handshake_class(fl, ds, d, ct)) {
		if (d == SERVER && !(fl->f & F_SH_SEEN)) {
			if (!b) {
				/* completing a record whose ServerHello was read from its first
				 * segment: it takes effect now, as in the engine */
				if (!(ds->flags & D_PEND_SH))
					return -1;
				ds->flags &= ~D_PEND_SH;
				apply_server_hello(fl, ds->pend_sh == SH_HRR_MARK, ds->pend_sh);
			} else if (server_handshake(w, b, len)) {
				return -1;
			}
		}
	} else if (ct == 20) {
		fl->f |= d == CLIENT ? F_CCS_C : F_CCS_S;
		if (!(fl->f & F_CONN_TLS13))
			ds->flags |= D_ENC;
	} else if (ct == 21 && !(ds->flags & D_ENC) && (len == 2 || !(fl->f & F_CONN_TLS13))) {
		/* plaintext alert(s): nothing the filter needs */
	} else if ((ds->flags & D_ENC) || ct == 23 ||
		   ((fl->f & F_CONN_TLS13) && (ct == 21 || ct == 22))) {
		encrypted_record(fl, d, ct, len);
	}
	return 0;
}

/* One record header per call, in sequence order; returns 1 to stop. */
static long walk_record(__u32 i, void *ctx)
{
	struct walk *w = ctx;
	struct flow *fl = w->fl;
	struct dir_state *ds = w->ds;
	__u32 seg_end = w->seq + w->plen;
	__u32 h = ds->hdr_seq;
	__u32 body;

	if (ds->pend_ct) {
		if (!seq_le(h, seg_end)) {
			/* still incomplete: the engine re-examines it with every segment */
			if (early_class(fl, ds, ds->pend_ct)) {
				encrypted_record(fl, w->d, ds->pend_ct, ds->pend_len);
				if (h - seg_end >= cfg.skip_min) {
					ds->skip_end = h;
					ds->flags |= D_SKIP;
					ds->next_seq = h;
				}
				ds->pend_ct = 0;
			}
			w->stop = 1;
			return 1;
		}
		if (complete_record(w, ds, ds->pend_ct, ds->pend_len, 0)) {
			w->stop = 2;
			return 1;
		}
		ds->pend_ct = 0;
	}
	__u64 hv;                   /* the 5 header bytes, the first in the low 8 bits */
	if (ds->hdr_have) {
		/* the header began in an earlier segment; it continues at payload offset off */
		__u32 have = ds->hdr_have, need = 5 - have, c;
		if (have > 4) {
			w->stop = 2;
			return 1;
		}
		hv = ds->hdr;
		if (w->plen < w->off + need) {
			/* still short (a header cut into three or more pieces): keep what is here */
			__u32 avail = w->plen - w->off;
			for (__u32 k = 0; k < 3; k++) {
				if (k >= avail || have + k > 3)
					break;
				if (load_byte(w->skb, w->pay + w->off + k, &c)) {
					w->stop = 2;
					return 1;
				}
				hv |= (__u64)c << (8 * ((have + k) & 3));
			}
			ds->hdr = (__u32)hv;
			ds->hdr_have = have + avail;
			w->stop = 1;
			return 1;
		}
		for (__u32 k = 0; k < 4; k++) {
			if (k >= need)
				break;
			if (load_byte(w->skb, w->pay + w->off + k, &c)) {
				w->stop = 2;
				return 1;
			}
			hv |= (__u64)c << (8 * ((have + k) & 7));
		}
		ds->hdr_have = 0;
		ds->hdr = 0;
		body = w->pay + w->off + need;
	} else {
		__u32 rel = h - w->seq;
		if (rel >= w->plen) {
			w->stop = 1;    /* the next header is in a later segment */
			return 1;
		}
		__u32 avail = w->plen - rel, c;
		if (avail < 5) {
			/* keep the start of the header for the next segment */
			__u32 kept = 0;
			for (__u32 k = 0; k < 4; k++) {
				if (k >= avail)
					break;
				if (load_byte(w->skb, w->pay + rel + k, &c)) {
					w->stop = 2;
					return 1;
				}
				kept |= c << (8 * k);
			}
			ds->hdr = kept;
			ds->hdr_have = avail;
			w->stop = 1;
			return 1;
		}
		hv = 0;
		if (bpf_skb_load_bytes(w->skb, w->pay + rel, &hv, 5)) {
			w->stop = 2;
			return 1;
		}
		body = w->pay + rel + 5;
	}
	COUNT(w->cnt, C_RECORDS);
	__u32 ct = hv & 0xFF, v1 = (hv >> 8) & 0xFF, v2 = (hv >> 16) & 0xFF;
	__u32 len = (((hv >> 24) & 0xFF) << 8) | ((hv >> 32) & 0xFF);
	/* wire.split_records: a bad header stops the engine's parsing of this side for good */
	if (ct < 20 || ct > 63 || v1 != 3 || v2 > 4 || len > MAX_RECORD) {
		ds->flags |= D_ERR;
		w->stop = 1;
		return 1;
	}
	__u32 rec_end = h + 5 + len;
	ds->hdr_seq = rec_end;
	if (seq_le(rec_end, seg_end)) {
		if (complete_record(w, ds, ct, len, body)) {
			w->stop = 2;
			return 1;
		}
		return 0;
	}
	/* incomplete at the end of this segment */
	if (early_class(fl, ds, ct)) {
		encrypted_record(fl, w->d, ct, len);
		if (rec_end - seg_end >= cfg.skip_min) {
			/* the flow table hands the rest of this record to the decoder to drop */
			ds->skip_end = rec_end;
			ds->flags |= D_SKIP;
			ds->next_seq = rec_end;
		}
	} else if (handshake_class(fl, ds, w->d, ct) && w->d == SERVER && !(fl->f & F_SH_SEEN)) {
		/* A record holding the ServerHello and more (a whole TLS 1.2 flight in one record,
		 * as JSSE writes it) spans segments.  Read the ServerHello if it is the record's
		 * first message and all in this segment; the engine applies it when the record
		 * is complete, and so does complete_record. */
		__u32 m = 0, avail = seg_end - (h + 5);
		if (avail < 4 || bpf_skb_load_bytes(w->skb, body, &m, 4)) {
			w->stop = 2;
			return 1;
		}
		__u32 ml = ((m >> 8) & 0xFF) << 16 | ((m >> 16) & 0xFF) << 8 | ((m >> 24) & 0xFF);
		int v = (m & 0xFF) == 2 && 4 + ml <= avail && 4 + ml <= len ?
			sh_version(w->skb, body + 4, ml) : -1;
		if (v < 0) {
			w->stop = 2;
			return 1;
		}
		ds->pend_sh = (v & SH_HRR) ? SH_HRR_MARK : (v & 0xFFFF);
		ds->flags |= D_PEND_SH;
		ds->pend_ct = ct;
		ds->pend_len = len;
	} else {
		ds->pend_ct = ct;
		ds->pend_len = len;
	}
	w->stop = 1;
	return 1;
}

/* Deliver payload bytes [off, plen) of an in-order segment to the reduced TLS reader. */
static __always_inline void deliver(struct walk *w)
{
	struct flow *fl = w->fl;
	struct dir_state *ds = w->ds;

	if (!(ds->flags & D_STARTED)) {
		/* TLSConnection._parse decides on the first 3 bytes of the stream (buffering a
		 * shorter start); the bytes kept so far are in hdr[] */
		__u32 have = ds->hdr_have, avail = w->plen - w->off, k, c;
		__u32 b = ds->hdr;
		if (have > 2) {
			lose(fl, w->cnt);
			return;
		}
		if (!have)
			ds->hdr_seq = w->seq + w->off;
		for (k = 0; k < 3; k++) {
			if (k < have)
				continue;
			if (k - have >= avail)
				break;
			if (load_byte(w->skb, w->pay + w->off + (k - have), &c)) {
				lose(fl, w->cnt);
				return;
			}
			b |= c << (8 * k);
		}
		if (k < 3) {
			ds->hdr = b;            /* still fewer than 3 bytes: keep them */
			ds->hdr_have = k;
			return;
		}
		__u32 b0 = b & 0xFF, b1 = (b >> 8) & 0xFF, b2 = (b >> 16) & 0xFF;
		/* SSLv2 framing, or not a record header (a plaintext preamble): not followed */
		if ((b0 & 0x80) || !(b0 >= 20 && b0 <= 24 && b1 == 3 && b2 <= 4)) {
			lose(fl, w->cnt);
			return;
		}
		ds->flags |= D_STARTED;
		ds->pend_ct = 0;
		/* hdr_have bytes of the first header are kept; walk_record reads the rest */
	}
	w->stop = 0;
	bpf_loop(MAX_RECORDS_PER_SEGMENT, walk_record, w, 0);
	if (w->stop != 1)
		lose(fl, w->cnt);
}

/* Session.handshake_over */
static __always_inline int handshake_over(struct flow *fl)
{
	if (!(fl->f & F_EST))
		return 0;
	__u32 dc = (__u16)(fl->counts[0] - fl->at_est[0]);
	__u32 ds = (__u16)(fl->counts[1] - fl->at_est[1]);
	if (dc + ds >= AFTER_ESTABLISHED)
		return 1;
	return dc >= 1 && (ds >= 1 || !(fl->f & F_SESS_TLS13));
}

static __always_inline void fresh(struct flow *fl, __u8 client_is_lo)
{
	__builtin_memset(fl, 0, sizeof(*fl));
	fl->created_ns = bpf_ktime_get_ns();
	fl->client_is_lo = client_is_lo;
	fl->state = S_ACTIVE;
}

/* bytewise compare of (addr, port) endpoints, as the engine orders its flow key (IPv4
 * addresses sit in word 0, the rest zero) */
static __always_inline int endpoint_le(const __u32 *a, __u16 ap, const __u32 *b, __u16 bp)
{
	if (a[0] != b[0])
		return bpf_ntohl(a[0]) < bpf_ntohl(b[0]);
	if (a[1] != b[1])
		return bpf_ntohl(a[1]) < bpf_ntohl(b[1]);
	if (a[2] != b[2])
		return bpf_ntohl(a[2]) < bpf_ntohl(b[2]);
	if (a[3] != b[3])
		return bpf_ntohl(a[3]) < bpf_ntohl(b[3]);
	return bpf_ntohs(ap) <= bpf_ntohs(bp);
}

static __always_inline int port_wanted(__u16 port)
{
	__u32 p = bpf_ntohs(port);
	return (cfg.ports[(p >> 6) & 1023] >> (p & 63)) & 1;
}

/* Tunnels the engine's decoder opens (cext/_encap_py.py): the carrier frames are passed
 * whole -- the inner connection's state is the engine's alone, so nothing of a tunnel is
 * dropped here, and nothing is gained on an underlay interface either (docs/services.md). */
#define ETH_P_MPLS_UC_ 0x8847
#define ETH_P_MPLS_MC_ 0x8848
#define ETH_P_PPP_SES_ 0x8864

static __always_inline int tunnel_udp_port(__u16 port)
{
	__u16 p = bpf_ntohs(port);
	/* VXLAN (and Linux's old VXLAN port), GENEVE, GTP-U, CAPWAP data */
	return p == 4789 || p == 8472 || p == 6081 || p == 2152 || p == 5247;
}

/* After a connection closed, the engine still reads what follows for a while (a server
 * chain in flight when the client reset, FlowTable's close_linger): pass that long. */
#define CLOSED_LINGER_NS 1000000000ULL
#define RST_WINDOW (1U << 20)

SEC("socket")
int tls_filter(struct __sk_buff *skb)
{
	__u64 zero = 0;                   /* an 8-byte slot (see load_byte) */
	struct counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return skb->len;
	if (skb->pkt_type == PACKET_OUTGOING && skb->ifindex == cfg.lo_ifindex) {
		COUNT(cnt, C_LOOPBACK_OUT);   /* libpcap drops these copies on lo itself */
		return 0;
	}
	COUNT(cnt, C_SEEN);

	/* ---- L2 / L3: what the engine's decoder reads */
	__u32 l3 = 0, proto;
	struct iphdr ip;
	__u8 th[14];
	int have_ip = 0;
	if (cfg.l2 == L2_ETHERNET) {
		/* the common case, Ethernet + IPv4 without options + TCP, in one read */
		struct {
			__u8 mac[12];
			__u16 et;
			struct iphdr ip;
			__u8 th[14];
		} __attribute__((packed)) fr;
		if (!bpf_skb_load_bytes(skb, 0, &fr, sizeof(fr)) && fr.et == bpf_htons(ETH_P_IP) &&
		    fr.ip.ihl == 5) {
			__builtin_memcpy(&ip, &fr.ip, sizeof(ip));
			__builtin_memcpy(th, fr.th, sizeof(th));
			have_ip = 1;
		}
	}
	if (have_ip) {
		l3 = 14;
		proto = ETH_P_IP;
	} else if (cfg.l2 == L2_ETHERNET) {
		__u16 et;
		l3 = 12;
		if (bpf_skb_load_bytes(skb, l3, &et, 2))
			goto filtered;
		for (int i = 0; i < 2; i++) {
			if (et != bpf_htons(ETH_P_8021Q) && et != bpf_htons(ETH_P_8021AD))
				break;
			l3 += 4;
			if (bpf_skb_load_bytes(skb, l3, &et, 2))
				goto filtered;
		}
		if (et == bpf_htons(ETH_P_8021Q) || et == bpf_htons(ETH_P_8021AD))
			goto unparsed;
		l3 += 2;
		proto = bpf_ntohs(et);
	} else {
		proto = bpf_ntohs(skb->protocol);
	}
	if (proto == ETH_P_MPLS_UC_ || proto == ETH_P_MPLS_MC_ || proto == ETH_P_PPP_SES_)
		goto tunnel;

	struct flow_key key = {};
	__u32 src[4] = {}, dst[4] = {};
	__u32 l4, ip_end;
	if (proto == ETH_P_IP) {
		if (!have_ip && bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)))
			goto filtered;
		if (ip.version != 4)
			goto filtered;
		if (ip.protocol == IPPROTO_GRE || ip.protocol == IPPROTO_IPIP ||
		    ip.protocol == IPPROTO_IPV6)
			goto tunnel;
		if (ip.protocol == IPPROTO_UDP && !(ip.frag_off & bpf_htons(0x3FFF))) {
			__u16 ports[2];
			if (bpf_skb_load_bytes(skb, l3 + ip.ihl * 4, ports, sizeof(ports)))
				goto filtered;
			if (tunnel_udp_port(ports[0]) || tunnel_udp_port(ports[1]))
				goto tunnel;
		}
		if (ip.protocol != IPPROTO_TCP)
			goto filtered;
		if (ip.frag_off & bpf_htons(0x3FFF))
			goto filtered;                   /* the decoder drops fragments */
		__u32 ihl = ip.ihl * 4, tot = bpf_ntohs(ip.tot_len);
		if (ihl < 20 || (tot && tot < ihl))
			goto unparsed;
		l4 = l3 + ihl;
		ip_end = tot ? l3 + tot : skb->len;     /* 0: a TSO-sized frame */
		src[0] = ip.saddr;
		dst[0] = ip.daddr;
		key.family = 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)))
			goto filtered;
		if (ip6.version != 6)
			goto filtered;
		if (ip6.nexthdr != IPPROTO_TCP)
			goto unparsed;                   /* extension headers: not followed */
		__u32 pl = bpf_ntohs(ip6.payload_len);
		l4 = l3 + 40;
		ip_end = pl ? l4 + pl : skb->len;
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
		key.family = 6;
	} else {
		goto filtered;
	}

	/* ---- TCP header */
	if (!have_ip && bpf_skb_load_bytes(skb, l4, th, sizeof(th)))
		goto unparsed;
	__u16 sport, dport;
	__builtin_memcpy(&sport, th, 2);
	__builtin_memcpy(&dport, th + 2, 2);
	if ((cfg.flags & CFG_PORTS) && !port_wanted(sport) && !port_wanted(dport))
		goto filtered;
	if (cfg.flags & CFG_HOSTS) {
		if (!bpf_map_lookup_elem(&hosts, src) && !bpf_map_lookup_elem(&hosts, dst))
			goto filtered;
	}
	__u32 seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	__u32 doff = (th[12] >> 4) * 4;
	__u8 flags = th[13];
	__u32 caplen = skb->len < cfg.snaplen ? skb->len : cfg.snaplen;
	int truncated = ip_end > caplen;
	__u32 end = truncated ? caplen : ip_end;
	if (doff < 20 || l4 + doff > ip_end || l4 + doff > end)
		goto unparsed;
	__u32 pay = l4 + doff, plen = end - pay;

	/* the decoder drops segments without payload, FIN, RST or SYN before any lookup */
	if (!plen && !(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
		COUNT(cnt, C_DROP_NOPAYLOAD);
		return 0;
	}

	/* ---- the flow */
	int from_lo = endpoint_le(src, sport, dst, dport);
	if (from_lo) {
		__builtin_memcpy(key.lo, src, 16);
		__builtin_memcpy(key.hi, dst, 16);
		key.lo_port = sport;
		key.hi_port = dport;
	} else {
		__builtin_memcpy(key.lo, dst, 16);
		__builtin_memcpy(key.hi, src, 16);
		key.lo_port = dport;
		key.hi_port = sport;
	}
	int syn_only = (flags & TCP_SYN) && !(flags & TCP_ACK);
	struct flow *fl = bpf_map_lookup_elem(&flows, &key);
	if (!fl) {
		__u32 z32 = 0;
		struct flow *nf = bpf_map_lookup_elem(&scratch, &z32);
		if (!nf)
			goto pass;
		if (flags & TCP_SYN) {
			/* FlowTable._new_flow: a SYN's sender is the client, a SYN-ACK's receiver */
			fresh(nf, syn_only ? from_lo : !from_lo);
			COUNT(cnt, C_FLOWS_NEW);
		} else {
			/* a flow that started before we did, or whose state the LRU evicted: the
			 * engine may still be reading it, so it is not followed but passed */
			fresh(nf, from_lo);
			nf->state = S_LOST;
			COUNT(cnt, C_FLOWS_MIDSTREAM);
		}
		if (bpf_map_update_elem(&flows, &key, nf, BPF_NOEXIST)) {
			COUNT(cnt, C_MAP_FAIL);
			goto pass;
		}
		fl = bpf_map_lookup_elem(&flows, &key);
		if (!fl) {
			COUNT(cnt, C_MAP_FAIL);
			goto pass;
		}
	} else if (fl->state == S_OVER || fl->state == S_CLOSED) {
		if (fl->state == S_CLOSED && !syn_only &&
		    bpf_ktime_get_ns() - fl->closed_ns < CLOSED_LINGER_NS) {
			COUNT(cnt, C_CLOSED_LINGER);
			goto pass;
		}
		if (!syn_only) {
			COUNT(cnt, C_DROP_DONE);
			return 0;
		}
		fresh(fl, from_lo);                      /* the 5-tuple reopens */
		COUNT(cnt, C_FLOWS_REOPENED);
	} else if (syn_only) {
		/* A SYN on a flow we still follow.  The engine treats it as part of the flow it
		 * has, or as a new connection when it finished the old one (timeout): start over
		 * when it is a client SYN with a new ISN, or the flow is not followed anyway. */
		int known = fl->have_isn && from_lo == fl->client_is_lo;
		/* FlowTable._syn_copy: with no ISN seen (a flow met mid-stream or at its SYN-ACK),
		 * a SYN at most RST_WINDOW behind the client's data is a copy of its first */
		struct dir_state *cs = &fl->d[CLIENT];
		int copy = !fl->have_isn && (cs->flags & D_HAVE_SEQ) &&
			   cs->next_seq - (seq + 1) <= RST_WINDOW;
		if ((known && fl->client_isn != seq) ||
		    (!fl->have_isn && !copy && (fl->state == S_LOST ||
						(fl->packets > 0 && from_lo == fl->client_is_lo)))) {
			fresh(fl, from_lo);
			COUNT(cnt, C_FLOWS_REOPENED);
		}
	}

	/* the engine finished this connection (user space marked it).  Only for flows passed
	 * without being followed: for a followed one the filter decides at the engine's packet
	 * itself, and the lookup would cost every handshake frame. */
	if (fl->state == S_LOST) {
		__u64 *mark = bpf_map_lookup_elem(&marks, &key);
		if (mark) {
			if (fl->created_ns <= *mark && !syn_only) {
				fl->state = S_OVER;
				COUNT(cnt, C_FLOWS_MARKED);
				bpf_map_delete_elem(&marks, &key);
				COUNT(cnt, C_DROP_DONE);
				return 0;
			}
			bpf_map_delete_elem(&marks, &key);   /* an older connection's mark */
		}
	}

	__u32 d = (from_lo == fl->client_is_lo) ? CLIENT : SERVER;
	/* Indexed through the map value: a constant d on some paths and another on others
	 * would make the pointer addition below differ by path, which the verifier refuses
	 * without CAP_PERFMON ("pointer arithmetic ... prohibited for !root"). */
	fl->dir = d;
	struct dir_state *ds = &fl->d[*(volatile __u8 *)&fl->dir & 1];
	if (flags & TCP_SYN) {
		seq += 1;
		/* FlowTable._segment: once the connection carries data, a SYN (a duplicate, a
		 * spoof) does not move its sequence */
		if (!(ds->flags & D_HAVE_SEQ) || fl->packets == 0) {
			ds->next_seq = seq;
			ds->flags |= D_HAVE_SEQ;
			if (d == CLIENT && syn_only) {
				fl->client_isn = seq - 1;
				fl->have_isn = 1;
			}
		}
	}
	if (plen) {
		__u32 seg_end = seq + plen;
		/* PacketDecoder: the flow table's ciphertext skip (not for SYN/FIN/RST segments) */
		if ((ds->flags & D_SKIP) && !(flags & (TCP_SYN | TCP_FIN | TCP_RST)) &&
		    seq_le(seg_end, ds->skip_end)) {
			COUNT(cnt, C_DROP_SKIP);
			return 0;
		}
		if (fl->packets >= cfg.budget_packets || fl->bytes + plen > cfg.budget_bytes) {
			if (fl->state == S_ACTIVE || fl->state == S_LOST) {
				if (fl->packets != 0xFFFFFFFF) {
					fl->packets = 0xFFFFFFFF;
					COUNT(cnt, C_FLOWS_BUDGET);
					lose(fl, cnt);
				}
			}
			if (!(flags & (TCP_SYN | TCP_FIN | TCP_RST))) {
				COUNT(cnt, C_DROP_BUDGET);
				return 0;
			}
		} else {
			fl->packets++;
			fl->bytes += plen;
		}
		if (fl->state == S_ACTIVE && truncated)
			lose(fl, cnt);                /* the engine marks a gap */
		if (fl->state == S_ACTIVE) {
			/* FlowTable.segment / _segment: in order, a retransmission, or ahead */
			__u32 off = 0;
			int parse = 1;
			if (ds->flags & D_HAVE_SEQ) {
				__u32 nxt = ds->next_seq;
				if (seq != nxt) {
					if (seq_le(seq, nxt)) {
						__u32 back = nxt - seq;
						if (back < plen)
							off = back;
						else
							parse = 0;      /* retransmission */
					} else {
						lose(fl, cnt);               /* a hole: the engine queues */
						parse = 0;
					}
				}
			}
			if (fl->state == S_ACTIVE && parse) {
				ds->next_seq = seg_end;
				ds->flags |= D_HAVE_SEQ;
				if (!(ds->flags & D_ERR)) {
					struct walk w = {
						.skb = skb, .fl = fl, .ds = ds, .cnt = cnt, .pay = pay,
						.plen = plen, .seq = seq, .off = off, .d = d,
					};
					deliver(&w);
				}
			}
		}
	}
	if (flags & TCP_RST) {
		/* FlowTable._segment: a RST further than RST_WINDOW from the sender's next byte
		 * (a blind spoof) is not taken; passed, the flow goes on */
		if ((ds->flags & D_HAVE_SEQ) && seq - ds->next_seq + RST_WINDOW > 2 * RST_WINDOW)
			goto pass;
		if (fl->state <= S_LOST) {
			fl->state = S_CLOSED;
			fl->closed_ns = bpf_ktime_get_ns();
			COUNT(cnt, C_FLOWS_CLOSED);
		}
		goto pass;
	}
	if (flags & TCP_FIN) {
		ds->flags |= D_FIN;
		if ((fl->d[0].flags & D_FIN) && (fl->d[1].flags & D_FIN) && fl->state <= S_LOST) {
			fl->state = S_CLOSED;
			fl->closed_ns = bpf_ktime_get_ns();
			COUNT(cnt, C_FLOWS_CLOSED);
			goto pass;
		}
	}
	if (fl->state == S_ACTIVE && handshake_over(fl)) {
		fl->state = S_OVER;
		COUNT(cnt, C_FLOWS_OVER);
	}
pass:
	COUNT(cnt, C_PASSED);
	return skb->len;
filtered:
	COUNT(cnt, C_DROP_FILTER);
	return 0;
tunnel:
	COUNT(cnt, C_TUNNEL);
	COUNT(cnt, C_PASSED);
	return skb->len;
unparsed:
	COUNT(cnt, C_UNPARSED);
	COUNT(cnt, C_PASSED);
	return skb->len;
}

char _license[] SEC("license") = "GPL";
