"""The eBPF capture backend: an in-kernel, stateful TLS-handshake filter on the sensor's
capture socket.  Open it through :func:`sensor.backends.open_capture`.

What it does
------------
A socket filter (``tlsfilter.bpf.c``) runs on every frame before libpcap's ring.  It keeps
per-flow state in an LRU hash map and passes a frame only when the sensor's engine can
still use it; everything else is dropped in the kernel, before any copy to user space.
*The engine's needs define it*: the filter follows each flow with the engine's own rules
and decides at the same packet the engine does --

* the flow table's reassembly (``cext/_flows_py.py``): in-order segments, retransmissions
  (passed: they move the summary's ``end``), a segment that overlaps the delivered bytes;
* ``TLSConnection`` (``cext/_tls_py.py``): record framing tracked by TCP sequence number,
  not by segment start -- a header split over any number of segments, several records in
  one 64 KB offload frame, a stream start shorter than 3 bytes; which records are reported
  as encrypted and when (at their header when incomplete, else when complete); the record
  framing errors that stop the engine reading a side; TLS 1.3 vs 1.2 from the
  ServerHello's supported_versions (HelloRetryRequest included), applied when its record
  is complete -- also when a whole TLS 1.2 flight is one record over several segments, as
  JSSE writes it; CCS turning a side encrypted in TLS <= 1.2;
* ``Session`` (``cext/_session_py.py``): establishment (both CCS then an encrypted record
  in TLS <= 1.2, application_data both ways in TLS 1.3), the per-side encrypted-record
  counts without probable encrypted alerts (``PROBABLE_ALERT_MAX``), and
  ``handshake_over`` (``AFTER_ESTABLISHED``: the summary's encrypted-record lengths, the
  TLS 1.3 server reaction to the client's Finished, the client's first data);
* the packet decoder (``cext/_wire_py.py``): it never looks at pure ACKs, nor at the
  ciphertext the flow table asked it to skip (the rest of an encrypted record of >=
  ``skip_min`` bytes once its header was read) -- the filter drops exactly those too;
* once over, reset, or closed by both sides (the flow table's finish), nothing more of the
  connection is used: every frame of it is dropped but a SYN that reopens the 5-tuple.

So on a 90 %-bulk mix ~95 % of the frames never leave the kernel, and the summaries are
identical to libpcap's (``tests/test_ebpf.py``: offline through ``BPF_PROG_TEST_RUN`` over
every test capture and transformed copies of them, live side by side with the pcap
backend).  The kernel cannot reassemble, so whatever it cannot follow *exactly* makes the
flow LOST -- reordering or loss (the engine queues), a plaintext preamble (STARTTLS), SSLv2
framing, a ServerHello itself split across segments, a truncated frame, a flow first seen without
its SYN (running before the sensor started, or evicted from the map) -- and a LOST flow is
passed as libpcap would pass it, up to a per-flow budget (``budget_packets`` /
``budget_bytes``, the safety net; counted in ``ebpf_flows_budget``).

User space may end a flow early: :meth:`capture.TlsFilter.finished` with each summary the
engine emits queues the endpoints and the summary's end time for the ``marks`` map (one
batched ``bpf()`` call per poll); at its next frame a LOST flow moves to OVER unless its
state is younger than the mark (a reopened 5-tuple).  Followed flows do not look at the
marks: the filter ends them at the engine's own packet, and a lookup per handshake frame
would cost more than the few frames a timed-out flow still sends.

Known limit: a handshake message the engine rejects as malformed (weird
``vector_overrun``, ``handshake_too_long``, ...) inside records whose framing is valid.
The engine stops reading that side; the filter, which reads record headers only, keeps
counting it and may decide the handshake is over when the engine would not, so the summary
can miss the connection's close and end time (randomly corrupted scenario captures: 9 of
282 differed, all with such a weird).  A per-flow "protocol error" hook from the flow table
to the map would close this; not done (the engine is not this package's).  Also: with RSS
that sends the two directions of a flow to different CPUs, the per-flow state is updated
from two CPUs without a lock (a spin lock cannot be held across the packet reads).

Where it attaches, and why
--------------------------
``SO_ATTACH_BPF`` on the libpcap socket of :class:`sensor.live.LiveCapture`: the frames
that pass go through pcapy-ng's TPACKET_V3 ring, ``next_batch`` and ``PACKET_FANOUT``
exactly as before, into the same Cython decoder and flow table -- one code path for both
backends, and a filtered frame costs nothing in user space.  TC clsact was the
alternative: it needs CAP_NET_ADMIN, changes the interface for every other user, and
would need its own way to user space (a ring buffer copy per frame).  Multi-worker: each
fanout member loads its own program and maps (hash fanout keeps a flow on one worker).
libpcap's ``setfilter`` would silently replace the program, so the eBPF capture selects
traffic by ports and hosts itself (a BPF expression needs the pcap backend) and
``set_filter`` refuses.  On ``lo`` the kernel shows each frame twice; the program drops the
outgoing copy, as libpcap does.

Build and load
--------------
C, compiled by ``setup.py`` with ``clang -O2 -g -target bpf`` against the UAPI headers
(``-I/usr/include/<triplet>``): the program reads packet bytes and ``__sk_buff`` fields
only, so it needs neither CO-RE relocations nor the kernel's BTF (no vmlinux.h in the
tree).  Loaded with ctypes on Debian's ``libbpf.so.1`` (:mod:`sensor.ebpf.libbpf`; bcc
and pylibbpf do not work here, NOTES-capture b).  Needs Linux >= 5.17 (``bpf_loop``).
The ServerHello parser is a global function (verified once); the record walk runs in a
``bpf_loop`` callback (up to 512 records per frame, more makes the flow LOST).

Privileges
----------
CAP_NET_RAW (the packet socket, promiscuous mode) and CAP_BPF (maps and the program).
Nothing else: no CAP_SYS_ADMIN, no CAP_NET_ADMIN (that is TC's), no CAP_PERFMON -- the
program is written for the verifier's unprivileged-pointer rules (no variable-offset stack
access, one variable offset per map-value pointer), and tested as ``nobody`` with exactly
those two ambient capabilities.  Memory is charged to the cgroup (no RLIMIT_MEMLOCK).
systemd: ``AmbientCapabilities=CAP_NET_RAW CAP_BPF`` and the same
``CapabilityBoundingSet``.  Without CAP_BPF ``--backend auto`` falls back to libpcap and
says so.

Memory (kernel, preallocated, ``bpftool map show``): the flow map 192 bytes per entry --
25.2 MB at the default ``map_size`` 131,072 (12.6 MB at 65,536) -- plus 1.8 MB for the
``marks`` map and ~0.1 MB for the rest.
"""
