// SPDX-License-Identifier: GPL-2.0
/*
 * tlsdiag endpoint hints: what the endpoint's own OpenSSL decided about a failing handshake,
 * read with uprobes on *exported* libcrypto functions, mapped to the connection's socket in the
 * kernel.  See sensor/ebpf/hints.py for the design; in short:
 *
 * - X509_STORE_CTX_get_error(ctx) (entry): every verification ends with libssl asking it for the
 *   result (ssl_verify_cert_chain: s->verify_result = X509_STORE_CTX_get_error(ctx)), and a verify
 *   callback asks it per certificate.  The error and its depth are the two ints the exported
 *   accessors X509_STORE_CTX_get_error / _get_error_depth return; their offsets in the context are
 *   read off those accessors' machine code by the loader and passed in the attach cookie.  Without
 *   the error offset a uretprobe reads the accessor's return value instead (no depth then).
 *   X509_STORE_CTX_init(ctx) (entry) marks the start of a verification: a new error is reported
 *   once per verification, when it changes.
 * - ERR_vset_error(lib, reason, ...) (OpenSSL 3; ERR_set_error and every ERR_raise go through
 *   it) or ERR_put_error(lib, func, reason, ...) (1.1.1): every error the library raises; only
 *   lib 20 (ERR_LIB_SSL) is reported.  A received fatal alert is reason 1000 + its code.
 * - raw tracepoint tcp_rcv_space_adjust(sk): fires in tcp_recvmsg for every skb whose data it
 *   copied to the reader; remembers per thread the socket it last read.  OpenSSL raises its verify result or error in the
 *   same call that read the message causing it, so that socket is the connection the hint is
 *   about; its 5-tuple and network namespace are read from the socket (CO-RE) at the hint.
 *
 * What is read, and nothing else: the error code, the verify depth, the lib/reason ints of an
 * error (register arguments -- never the format string or its arguments), the thread's id and
 * comm, and the socket's addresses, ports, family and netns inode.  No key material, no
 * plaintext, no other process memory, no pointer leaves the kernel.
 *
 * Built with clang -target bpf -D__TARGET_ARCH_<arch> against the UAPI headers; the kernel
 * structs below are CO-RE relocated against the running kernel's BTF at load.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* ---- the kernel's types, only the fields read (CO-RE: offsets come from the kernel's BTF) ---- */
struct in6_addr {
	__u8 s6_addr[16];
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

#define AF_INET 2
#define AF_INET6 10
#define ERR_LIB_SSL 20

/* ---- the attach cookie (written by hints.py, one per attachment) ---- */
#define CK_LIB(c) ((__u32)((c) & 0xffff))           /* index of the hooked library */
#define CK_ERR_OFF(c) ((__u32)(((c) >> 16) & 0xffff)) /* offset of ctx->error, 0xffff unknown */
#define CK_DEPTH_OFF(c) ((__u32)(((c) >> 32) & 0xffff)) /* offset of ctx->error_depth */
#define CK_PUT_ERROR(c) ((__u32)(((c) >> 48) & 0x1)) /* ERR_put_error(lib, func, reason) */
#define OFF_UNKNOWN 0xffff

/* ---- events (layout mirrored in hints.py EVENT) ---- */
#define K_VERIFY 1       /* code = X509_V_ERR_*, depth */
#define K_SSL_ERROR 2    /* code = SSL reason (lib 20) */

struct hint_event {
	__u64 ts_ns;         /* bpf_ktime_get_ns at the hint */
	__u64 recv_ns;       /* when this thread last read data from the socket; 0 = no socket */
	__u32 tgid;
	__u32 tid;
	__u32 netns;         /* inode of the socket's network namespace */
	__u16 kind;
	__u16 lib;
	__s32 code;
	__s32 depth;         /* -1: unknown */
	__u16 family;        /* AF_INET / AF_INET6; 0 = no socket */
	__u16 lport;         /* host order */
	__u16 rport;         /* host order */
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[16];
};

/* ---- counters (PERCPU_ARRAY; names in hints.py COUNTERS, same order) ---- */
enum {
	C_RECV, C_VERIFY_CALLS, C_ERR_CALLS, C_EVENTS, C_NO_SOCKET, C_RINGBUF_FULL, C_MAP_FAIL,
	C_MAX
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[C_MAX]);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* thread -> the socket it last read data from */
struct last_recv {
	__u64 sk;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct last_recv);
} recv_by_tid SEC(".maps");

/* thread -> its verification in progress: the context and the last error reported for it */
struct verify_state {
	__u64 ctx;
	__s32 last;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct verify_state);
} verify_by_tid SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&counters, &zero);

	if (c && i < C_MAX)
		__sync_fetch_and_add(&c[i], 1);
}

/* ---- the socket side: raw tracepoint tcp_rcv_space_adjust(struct sock *sk) ---- */
SEC("raw_tracepoint")
int recv_done(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 sk = ctx->args[0];
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct last_recv *r;

	count(C_RECV);
	if (!sk)
		return 0;
	r = bpf_map_lookup_elem(&recv_by_tid, &tid);
	if (r) {                         /* the usual case: a thread that read before */
		r->sk = sk;
		r->ns = bpf_ktime_get_ns();
		return 0;
	}
	struct last_recv v = { .sk = sk, .ns = bpf_ktime_get_ns() };
	if (bpf_map_update_elem(&recv_by_tid, &tid, &v, BPF_ANY))
		count(C_MAP_FAIL);
	return 0;
}

/* fill the event's socket fields from the thread's last read socket */
static __always_inline void fill_socket(struct hint_event *e, __u32 tid)
{
	struct last_recv *r = bpf_map_lookup_elem(&recv_by_tid, &tid);
	struct sock *sk;
	unsigned short family;

	if (!r || !r->sk) {
		count(C_NO_SOCKET);
		return;
	}
	sk = (struct sock *)r->sk;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &d, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_v6_daddr);
	} else {
		count(C_NO_SOCKET);
		return;
	}
	e->family = family;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->recv_ns = r->ns;
}

static __always_inline int emit(__u16 kind, __u16 lib, __s32 code, __s32 depth)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hint_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(C_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->kind = kind;
	e->lib = lib;
	e->code = code;
	e->depth = depth;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	fill_socket(e, e->tid);
	bpf_ringbuf_submit(e, 0);
	count(C_EVENTS);
	return 0;
}

/* ---- libcrypto: errors ---- */
SEC("uprobe")
int ssl_error(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	int lib = (int)PT_REGS_PARM1(ctx);
	/* both candidates read unconditionally: the verifier refuses a computed ctx offset */
	int arg2 = (int)PT_REGS_PARM2(ctx);
	int arg3 = (int)PT_REGS_PARM3(ctx);

	if (lib != ERR_LIB_SSL)
		return 0;
	count(C_ERR_CALLS);
	return emit(K_SSL_ERROR, CK_LIB(cookie), CK_PUT_ERROR(cookie) ? arg3 : arg2, -1);
}

/* ---- libcrypto: certificate verification ---- */
SEC("uprobe")
int verify_init(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct verify_state v = { .ctx = (__u64)PT_REGS_PARM1(ctx), .last = 0 };

	bpf_map_update_elem(&verify_by_tid, &tid, &v, BPF_ANY);
	return 0;
}

static __always_inline int verify_result(__u64 cookie, __u64 vctx, __s32 err)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 depth_off = CK_DEPTH_OFF(cookie);
	struct verify_state *v = bpf_map_lookup_elem(&verify_by_tid, &tid);
	__s32 depth = -1;

	count(C_VERIFY_CALLS);
	if (v && v->ctx == vctx) {
		if (err == v->last)
			return 0;                /* asked again for the same result */
		v->last = err;
	} else {
		struct verify_state n = { .ctx = vctx, .last = err };

		bpf_map_update_elem(&verify_by_tid, &tid, &n, BPF_ANY);
	}
	if (err == 0)
		return 0;
	if (depth_off != OFF_UNKNOWN &&
	    bpf_probe_read_user(&depth, sizeof(depth), (void *)(vctx + depth_off)))
		depth = -1;
	return emit(K_VERIFY, CK_LIB(cookie), err, depth);
}

SEC("uprobe")
int verify_get(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 vctx = (__u64)PT_REGS_PARM1(ctx);
	__u32 err_off = CK_ERR_OFF(cookie);
	__s32 err;

	if (!vctx)
		return 0;
	if (err_off == OFF_UNKNOWN) {    /* the uretprobe reads the result: remember the context */
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct verify_state *v = bpf_map_lookup_elem(&verify_by_tid, &tid);

		if (v && v->ctx != vctx) {
			v->ctx = vctx;
			v->last = 0;
		} else if (!v) {
			struct verify_state n = { .ctx = vctx, .last = 0 };

			bpf_map_update_elem(&verify_by_tid, &tid, &n, BPF_ANY);
		}
		return 0;
	}
	if (bpf_probe_read_user(&err, sizeof(err), (void *)(vctx + err_off)))
		return 0;
	return verify_result(cookie, vctx, err);
}

SEC("uretprobe")
int verify_get_ret(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct verify_state *v = bpf_map_lookup_elem(&verify_by_tid, &tid);

	if (!v || !v->ctx)
		return 0;
	return verify_result(cookie, v->ctx, (__s32)PT_REGS_RC(ctx));
}
