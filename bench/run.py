#!/usr/bin/env python3
"""tlsdiag speed/correctness benchmark against the shared peers (issue 2, "Speed").

Runs `tlsdiag summarize FILE --format jsonl` (C extension and/or pure-Python
twin) and the peers of the shared harness (../shared/bench: libpcap read
floor, Suricata 7 with one worker, ssldump, ...) on the SAME corpora, in the
same interleaved rounds (order rotated every round), times each process
(perf_counter wall, os.wait4 CPU + max RSS), scores every output against the
corpus truth file with the shared score.py, and writes a markdown table and
JSON to $WORK/results/.

The shared harness is reused, not copied: corpora come from its
ensure_corpus() (same names and cache, so both harnesses share them), peers
run through its peers/ runners, scores come from its score.py.  Every run
(ours and peers alike) is timed by bench/rusage_exec.c, a tiny fork/exec/wait4
launcher, so max RSS is the tool's and not this harness's (see that file).
See bench/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import mmap
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("bench.run")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def shared_bench_dir() -> Path:
    env = os.environ.get("TLSDIAG_SHARED_BENCH")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2] / "shared" / "bench"


SHARED = shared_bench_dir()
sys.path.insert(0, str(SHARED))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
try:
    import run_peers  # noqa: E402  (shared: ensure_corpus)
    import score  # noqa: E402      (shared: score)
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.exit("bench: cannot import the shared harness from %s (%s); set TLSDIAG_SHARED_BENCH" % (SHARED, exc))
import convert  # noqa: E402

DEFAULT_PEERS = ["floor-libpcap", "suricata-1thread", "ssldump"]
EXTRA_PEERS = ["dpkt", "nfstream", "tshark"]
KNOWN_PEERS = ["floor-libpcap", "floor-tcpdump", "floor-python", "suricata", "suricata-1thread",
               "suricata-1thread-engine", "ssldump", "tshark", "dpkt", "nfstream"]
FACTS = ("sni", "version", "cipher", "alert")
DEFAULT_OUR_CMD = "tlsdiag summarize {pcap} --format jsonl"


# ----------------------------------------------------------------------------- helpers

def kname(n: int) -> str:
    """Corpus size label, same rule as run_peers.py (hs-100k, bulk90-10k)."""
    return "%dk" % (n // 1000) if n % 1000 == 0 else str(n)


def corpus_list(a: argparse.Namespace) -> list[tuple[str, int, float]]:
    out = []
    if not a.skip_hs:
        out.append(("hs-" + kname(a.connections), a.connections, 0.0))
    if not a.skip_bulk:
        out.append(("bulk%d-%s" % (round(a.bulk_ratio * 100), kname(a.bulk_connections)),
                    a.bulk_connections, a.bulk_ratio))
    return out


def build_launcher(work: str) -> str:
    """Compile bench/rusage_exec.c into $WORK (see the comment there for why it exists)."""
    exe = os.path.join(work, "rusage_exec")
    src = HERE / "rusage_exec.c"
    if not os.path.exists(exe) or os.path.getmtime(exe) < src.stat().st_mtime:
        r = subprocess.run(["cc", "-O2", "-o", exe, str(src)], capture_output=True, text=True)
        if r.returncode:
            sys.exit("bench: cannot build %s: %s" % (src, r.stderr.strip()[:200]))
    return exe


#: how a corpus is put in the page cache before the rounds (``--cache``, here and in
#: bench/jobs.py)
CACHE_STATES = ("read", "as-is")
CACHE_HELP = ("how each capture is put in the page cache before the rounds: 'read' (default): "
              "dropped, then read through, as a capture read from the disk is held; 'as-is': "
              "read through as it is (settle_cache: a corpus as written may be held in 4 KB "
              "pages, which a mapped walk pays for)")


def settle_cache(path: str, state: str = "read") -> str:
    """Put ``path`` in the page cache as ``state`` says, and say how it is held there.

    ``read``: as a capture read from the disk is held -- its cached pages dropped
    (``fsync``, ``POSIX_FADV_DONTNEED``), then read through once.  ``as-is``: read through
    once, as it is (a corpus as ``make_corpus.py`` left it may be held partly or wholly in
    4 KB folios).  The difference matters to a walk through mappings: read from the disk,
    Linux 6.x (ext4 here) caches a large file in folios of up to 2 MB, which a mapping takes a
    page-table entry per 2 MB for; written in small pieces and still cached, it may stay in
    4 KB folios, taken 16 at a time per fault and counted one by one by every process that
    maps them (2026-12-05, Intel host, 6.18: the walk alone of hs-100k 0.14 s against
    0.25-0.29 s; ``--jobs 2`` 1.59 s against 1.72 s in one 7-round run of both states).
    Returns a line for the log: the share of the file that a mapping took in 2 MB entries
    (``FilePmdMapped``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if state == "read":
            try:
                os.fsync(fd)                # (dirty pages are not dropped)
            except OSError:                 # (a file system that cannot: dropped as it is)
                pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        buf = bytearray(1 << 20)
        while os.readv(fd, [buf]):
            pass
        return "%s: page cache %s, %s" % (os.path.basename(path), state, _pmd_share(fd))
    finally:
        os.close(fd)


def _pmd_share(fd: int) -> str:
    """How much of the file a read-only mapping of all of it holds in 2 MB entries, once
    one byte per 2 MB was read through it (``FilePmdMapped`` in /proc/self/smaps)."""
    size = os.fstat(fd).st_size
    if not size:
        return "empty"
    name = os.readlink("/proc/self/fd/%d" % fd)
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        for at in range(0, size, 2 << 20):
            m[at]
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    for i, line in enumerate(lines):
        head = line.split(maxsplit=5)
        if len(head) == 6 and head[5] == name:      # (a mapping's first line: range ... path)
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            if hi - lo < size:                      # (another mapping of the file)
                continue
            for more in lines[i + 1:i + 40]:
                if more.startswith("FilePmdMapped:"):
                    pmd_kb = int(more.split()[1])
                    return "%.0f %% of it mapped in 2 MB entries" % (
                        100.0 * pmd_kb * 1024 / (hi - lo))
            break
    return "2 MB mappings unknown"


def run_timed(launcher: str, argv: list[str], env: dict[str, str], out_path: str, err_path: str | None,
              timeout: float) -> dict:
    """Run argv under rusage_exec: stdout to out_path, stderr to err_path (None: with stdout).

    Returns wall (the launcher's CLOCK_MONOTONIC around fork..wait4), cpu, user, sys,
    maxrss_kb (of the measured process tree, not of this harness), rc, summary (last
    line of stderr for ours, of the combined output for peers)."""
    res_path = out_path + ".rusage.json"
    for old in (res_path, out_path):
        # (a fresh output file: ext4 writes back a file that was cut to nothing and written
        # again when it is closed -- auto_da_alloc -- which put ~0.09 s of disk writes at the
        # end of a run of ours writing 229 MB over the last run's output)
        if os.path.exists(old):
            os.unlink(old)
    with open(out_path, "wb") as fo, open(err_path or os.devnull, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen([launcher, res_path] + argv, stdout=fo,
                             stderr=fe if err_path else subprocess.STDOUT, env=env, start_new_session=True,
                             cwd=os.path.dirname(out_path))
        try:
            p.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            killed = True
        outer = time.perf_counter() - t0
    try:
        r = json.loads(Path(res_path).read_text())
    except (OSError, ValueError):
        r = {"wall": outer, "user": 0.0, "sys": 0.0, "maxrss_kb": 0, "rc": p.returncode or -1}
    text = Path(err_path or out_path).read_text("utf-8", "replace").strip().splitlines()
    return {"wall": r["wall"], "wall_outer": outer, "cpu": r["user"] + r["sys"], "user": r["user"],
            "sys": r["sys"], "maxrss_kb": r["maxrss_kb"], "rc": -9 if killed else r["rc"],
            "summary": ("timeout after %ds" % timeout) if killed else (text[-1] if text else "")}


class Ctx:
    def __init__(self, a: argparse.Namespace, work: str) -> None:
        self.a = a
        self.work = work
        self.peers_dir = SHARED / "peers"
        venv_py = os.path.join(work, "venv", "bin", "python")
        self.py = a.py or (venv_py if os.access(venv_py, os.X_OK) else "python3")
        wrapper = os.path.join(work, "suricata")
        self.suricata = a.suricata or (wrapper if os.access(wrapper, os.X_OK) else "suricata")
        self.floor_bin = os.path.join(work, "pcapfloor")
        self.env = dict(os.environ, PY=self.py, SURICATA=self.suricata)
        self.missing: dict[str, str] = {}

    def can_import(self, mods: list[str]) -> bool:
        try:
            return subprocess.run([self.py, "-c", "import " + ",".join(mods)], capture_output=True).returncode == 0
        except OSError:
            return False

    def available(self, peer: str) -> bool:
        """Check (and build, for the floor) one peer; record why it is missing."""
        P = self.peers_dir
        if peer == "floor-libpcap":
            r = subprocess.run(["cc", "-O2", "-o", self.floor_bin, str(P / "pcapfloor.c"), "-lpcap"],
                               capture_output=True, text=True)
            if r.returncode:
                self.missing[peer] = "cc/libpcap-dev: " + r.stderr.strip()[:80]
            return r.returncode == 0
        if peer == "floor-tcpdump":
            ok = shutil.which("tcpdump") is not None
        elif peer == "floor-python":
            ok = True
        elif peer in ("tshark", "ssldump"):
            ok = shutil.which(peer) is not None
        elif peer in ("dpkt", "nfstream"):
            ok = self.can_import([peer])
        elif peer in ("suricata", "suricata-1thread", "suricata-1thread-engine"):
            try:
                ok = subprocess.run([self.suricata, "-V"], capture_output=True).returncode == 0
            except OSError:
                ok = False
        else:
            self.missing[peer] = "unknown peer (known: %s)" % ", ".join(KNOWN_PEERS)
            return False
        if not ok:
            self.missing[peer] = "not installed / not importable by %s (run ../shared/bench/setup.sh)" % self.py
        return ok

    def peer_argv(self, peer: str, pcap: str, outp: str) -> list[str]:
        P = self.peers_dir
        return {
            "floor-libpcap": lambda: [self.floor_bin, pcap],
            "floor-tcpdump": lambda: ["tcpdump", "-r", pcap, "-w", "/dev/null"],
            "floor-python": lambda: [self.py, str(P / "floor_python.py"), pcap],
            "tshark": lambda: [str(P / "tshark_peer.sh"), pcap, outp],
            "ssldump": lambda: [str(P / "ssldump_peer.sh"), pcap, outp],
            "dpkt": lambda: [self.py, str(P / "dpkt_peer.py"), pcap, outp],
            "nfstream": lambda: [self.py, str(P / "nfstream_peer.py"), pcap, outp],
            "suricata": lambda: [str(P / "suricata_peer.sh"), pcap, outp],
            "suricata-1thread": lambda: ["env", "SURICATA_RUNMODE=single", str(P / "suricata_peer.sh"), pcap, outp],
            # the engine alone (same command and config as suricata_peer.sh, runmode single);
            # its eve.json is turned into peer records by post() below, untimed, like ours
            "suricata-1thread-engine": lambda: [self.suricata, "-c", str(P / "suricata.yaml"), "-S", "/dev/null",
                                                "-k", "none", "--runmode", "single", "-r", pcap,
                                                "-l", self.engine_logdir(outp, fresh=True)],
        }[peer]()

    def engine_logdir(self, outp: str, fresh: bool = False) -> str:
        d = outp + ".eve"
        if fresh:
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        return d

    def post(self, peer: str, outp: str) -> None:
        """Untimed post-processing for peers timed without theirs."""
        if peer == "suricata-1thread-engine":
            d = self.engine_logdir(outp)
            subprocess.run([self.py, str(self.peers_dir / "suricata_post.py"), os.path.join(d, "eve.json"), outp],
                           capture_output=True, env=self.env)
            shutil.rmtree(d, ignore_errors=True)


SNAPSHOT: str | None = None   # set by --snapshot: PYTHONPATH of the frozen copy


def our_env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TLSDIAG_NO_EXTENSIONS", None)
    if impl == "py":
        env["TLSDIAG_NO_EXTENSIONS"] = "1"
    if SNAPSHOT:
        env["PYTHONPATH"] = SNAPSHOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


#: the packages a run imports (their bytecode compiled in a snapshot)
PACKAGES = ("tlsdiag", "sensor", "analyzer", "cext", "proto")


def make_snapshot(work: str, rev: str) -> str:
    """`git archive REV` of this repository into $WORK/snap-<sha>, Cython extension built in place,
    its modules' bytecode compiled.

    The measured code then cannot change mid-run when others edit the working tree (an editable
    install follows every edit and rebuild).  The bytecode is what an install has (pip compiles
    it; an editable install writes it on the first run): without it -- a fresh tree, and
    PYTHONDONTWRITEBYTECODE=1 in the environment -- every timed run would compile every module
    first (0.15-0.2 s of each run on this host, as serial in --jobs N as in one)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", rev], capture_output=True,
                         text=True, check=True).stdout.strip()
    d = os.path.join(work, "snap-" + sha)
    if not os.path.exists(os.path.join(d, ".built")):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        arch = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", sha], capture_output=True,
                              check=True).stdout
        subprocess.run(["tar", "-x", "-C", d], input=arch, check=True)
        env = dict(os.environ)
        env.pop("TLSDIAG_NO_EXTENSIONS", None)
        r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=d, env=env,
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit("bench: snapshot build failed in %s:\n%s" % (d, r.stderr[-2000:]))
        Path(d, ".built").write_text(sha + "\n")
    if not os.path.exists(os.path.join(d, ".compiled")):
        r = subprocess.run([sys.executable, "-m", "compileall", "-q"] + [
            p for p in PACKAGES if os.path.isdir(os.path.join(d, p))], cwd=d,
            capture_output=True, text=True)
        if r.returncode:
            sys.exit("bench: compiling the snapshot's bytecode failed in %s:\n%s"
                     % (d, (r.stdout + r.stderr)[-2000:]))
        Path(d, ".compiled").write_text(sha + "\n")
    return d


def check_impl(cmd_tmpl: list[str], impl: str, cwd: str) -> str:
    """Which wire implementation our command really loads (cext.wire.IMPLEMENTATION), via the
    interpreter of the tlsdiag script; '?' if it cannot be told."""
    exe = shutil.which(cmd_tmpl[0]) if cmd_tmpl else None
    py = sys.executable
    try:
        with open(exe or "", "rb") as f:
            first = f.readline().decode("utf-8", "replace")
        if first.startswith("#!") and "python" in first:
            py = first[2:].split()[0]
    except OSError:
        pass
    if cmd_tmpl and "python" in os.path.basename(cmd_tmpl[0]):
        py = cmd_tmpl[0]
    r = subprocess.run([py, "-c", "import cext.wire as w; print(w.IMPLEMENTATION, w.__file__)"],
                       capture_output=True, text=True, env=our_env(impl), cwd=cwd)
    return r.stdout.strip() if r.returncode == 0 else "?"


def pct(sc: dict | None, k: str) -> str:
    if sc is None:
        return "-"
    if sc.get(k) is None:
        return "n/a"
    return "%.1f%%" % (100.0 * sc[k] / sc["truth"]) if sc["truth"] else "-"


def worst_score(scores: list[dict]) -> dict | None:
    """Per fact, the run with the fewest right (a flaky tool is not 100 %)."""
    scores = [s for s in scores if s]
    if not scores:
        return None
    out = dict(scores[0])
    for k in ("found",) + FACTS:
        vals = [s[k] for s in scores if s.get(k) is not None]
        out[k] = min(vals) if vals else None
    return out


def fmt_s(x: float | None) -> str:
    return "-" if x is None else ("%.2f" % x if x < 100 else "%.0f" % x)


# ----------------------------------------------------------------------------- profile mode

def profile(a: argparse.Namespace, work: str, name: str, pcap: str) -> None:
    """cProfile one `tlsdiag summarize` run; print + save the top functions by tottime."""
    import pstats

    os.makedirs(os.path.join(work, "results"), exist_ok=True)
    for impl in (["c", "py"] if a.impl == "both" else [a.impl]):
        prof = os.path.join(work, "results", "profile-%s-%s.prof" % (name, impl))
        argv = [sys.executable, "-m", "cProfile", "-o", prof, "-m", "tlsdiag", "summarize", pcap, "--format", "jsonl"]
        t0 = time.perf_counter()
        with open(os.path.join(work, "out", "profile.jsonl"), "wb") as fo:
            rc = subprocess.run(argv, stdout=fo, env=our_env(impl), cwd=work).returncode
        print("# profile %s impl=%s rc=%d %.1fs (under cProfile) -> %s" % (
            name, impl, rc, time.perf_counter() - t0, prof), flush=True)
        txt = os.path.join(work, "results", "profile-%s-%s.txt" % (name, impl))
        with open(txt, "w") as f:
            pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(a.profile_top)
        print(Path(txt).read_text())


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=100_000, help="handshake-only corpus size (default 100000)")
    ap.add_argument("--bulk-connections", type=int, default=10_000, help="bulk corpus size (default 10000)")
    ap.add_argument("--bulk-ratio", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-hs", action="store_true", help="no handshake-only corpus")
    ap.add_argument("--skip-bulk", action="store_true", help="no bulk corpus")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                    help="comma list of peers (default %s; known: %s; 'none' = ours only)" % (
                        ",".join(DEFAULT_PEERS), ",".join(KNOWN_PEERS)))
    ap.add_argument("--all-peers", action="store_true", help="add %s" % ",".join(EXTRA_PEERS))
    ap.add_argument("--impl", choices=["c", "py", "both", "none"], default="c",
                    help="our implementation: C extension (default), pure Python (TLSDIAG_NO_EXTENSIONS=1), "
                         "both, or none (peers only)")
    ap.add_argument("--our-cmd", default=DEFAULT_OUR_CMD,
                    help="our command, {pcap} is replaced (default: %(default)r); stdout = summary JSONL")
    ap.add_argument("--snapshot", nargs="?", const="HEAD", default=None, metavar="REV",
                    help="measure a frozen copy of the committed REV (default HEAD): git archive into "
                         "$WORK/snap-<sha>, extension built in place, run as `python -m tlsdiag` with "
                         "PYTHONPATH=that copy, so concurrent edits cannot change the code mid-run")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "tlsbench"),
                    help="work dir shared with ../shared/bench (default ${TMPDIR:-/tmp}/tlsbench)")
    ap.add_argument("--py", default=None, help="Python for the Python peers (default $WORK/venv/bin/python)")
    ap.add_argument("--suricata", default=None, help="suricata binary (default $WORK/suricata wrapper)")
    ap.add_argument("--timeout", type=float, default=3600, help="per-run timeout, seconds")
    ap.add_argument("--label", default="", help="suffix for the result file names")
    ap.add_argument("--repo-results", action="store_true",
                    help="also copy the md/json table to bench/results/DATE[-label]-table.{md,json}")
    ap.add_argument("--cache", choices=CACHE_STATES, default="read", help=CACHE_HELP)
    ap.add_argument("--profile", action="store_true",
                    help="instead of timing: cProfile one run per corpus/impl and print the top functions")
    ap.add_argument("--profile-top", type=int, default=15)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="# %(message)s")

    work = os.path.abspath(a.work)
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    os.makedirs(os.path.join(work, "results"), exist_ok=True)
    ctx = Ctx(a, work)
    launcher = build_launcher(work)
    global SNAPSHOT
    if a.snapshot:
        SNAPSHOT = make_snapshot(work, a.snapshot)
        if a.our_cmd == DEFAULT_OUR_CMD:
            a.our_cmd = shlex.join([sys.executable, "-m", "tlsdiag", "summarize", "{pcap}", "--format", "jsonl"])
        print("# snapshot: %s" % SNAPSHOT, flush=True)

    # corpora (shared cache, same names as run_peers.py)
    info = {}
    for name, n, ratio in corpus_list(a):
        pcap, meta = run_peers.ensure_corpus(work, name, n, ratio, a.seed, sys.executable)
        info[name] = {"pcap": pcap, "meta": meta, "truth": os.path.join(work, name + ".truth.jsonl")}
    if not info:
        sys.exit("bench: no corpus selected")

    if a.profile:
        for name in info:
            profile(a, work, name, info[name]["pcap"])
        return 0

    # who runs
    impls = {"both": ["c", "py"], "none": []}.get(a.impl, [a.impl])
    ours = ["tlsdiag-" + i for i in impls]
    want = [] if a.peers in ("", "none") else [p for p in a.peers.split(",") if p]
    if a.all_peers:
        want += [p for p in EXTRA_PEERS if p not in want]
    peers = [p for p in want if ctx.available(p)]
    cmd_tmpl = shlex.split(a.our_cmd)
    names = ours + peers
    loaded = {}
    for o in ours:
        impl = o.split("-", 1)[1]
        loaded[o] = check_impl(cmd_tmpl, impl, work)
        if loaded[o].split()[0] not in (impl, "?") or (SNAPSHOT and SNAPSHOT not in loaded[o]):
            sys.exit("bench: %s asked for, but the installed tlsdiag loads the %r wire implementation "
                     "(cext not built? pip install -e .)" % (o, loaded[o]))
        print("# %s: cext.wire.IMPLEMENTATION, file = %s" % (o, loaded[o]), flush=True)
    if not names:
        sys.exit("bench: nothing to run")
    tables = convert.load_tables()
    load0 = os.getloadavg()
    print("# %s  %d cores, %s; python %s; load %.2f; our cmd: %s; names: %s" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), os.cpu_count(),
        platform.release(), platform.python_version(), load0[0], a.our_cmd, tables[2]), flush=True)
    print("# run order per round (rotated): %s" % ", ".join(names), flush=True)
    for k, v in ctx.missing.items():
        print("# missing: %s (%s)" % (k, v), flush=True)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + (
        "-" + a.label if a.label else "")
    runs_path = os.path.join(work, "results", "%s-runs.jsonl" % stamp)
    for name in info:  # the page cache, as --cache says
        info[name]["cache"] = settle_cache(info[name]["pcap"], a.cache)
        print("# %s" % info[name]["cache"], flush=True)

    results: list[dict] = []
    for rnd in range(a.rounds):
        for ci, name in enumerate(info):
            k = (rnd + ci) % len(names)
            order = names[k:] + names[:k]
            pcap = info[name]["pcap"]
            for who in order:
                outp = os.path.join(work, "out", "%s.%s.jsonl" % (who, name))
                conv = None
                if who.startswith("tlsdiag-"):
                    impl = who.split("-", 1)[1]
                    raw = os.path.join(work, "out", "%s.%s.raw.jsonl" % (who, name))
                    err = os.path.join(work, "out", "%s.%s.stderr" % (who, name))
                    argv = [x.replace("{pcap}", pcap) for x in cmd_tmpl]
                    res = run_timed(launcher, argv, our_env(impl), raw, err, a.timeout)
                    t0 = time.perf_counter()          # conversion is not timed
                    conv = convert.convert_file(raw, outp, tables).as_dict()
                    conv["seconds"] = round(time.perf_counter() - t0, 2)
                    res["raw_bytes"] = os.path.getsize(raw)
                else:
                    if os.path.exists(outp):
                        os.unlink(outp)
                    console = os.path.join(work, "out", "%s.%s.console" % (who, name))
                    res = run_timed(launcher, ctx.peer_argv(who, pcap, outp), ctx.env, console, None, a.timeout)
                    if res["rc"] == 0:
                        ctx.post(who, outp)
                sc = None
                if not who.startswith("floor") and os.path.exists(outp) and res["rc"] == 0:
                    sc = score.score(info[name]["truth"], outp)
                res.update(round=rnd + 1, corpus=name, peer=who, score=sc, convert=conv)
                res["summary"] = res["summary"].replace(work, "$WORK")
                results.append(res)
                print("round %d %-11s %-17s %8.2fs wall %8.2fs cpu %6.0f MB rc=%d  %s%s" % (
                    rnd + 1, name, who, res["wall"], res["cpu"], res["maxrss_kb"] / 1024, res["rc"],
                    score.fmt(sc) if sc else res["summary"][:80],
                    ("  [unmapped c/a/v %d/%d/%d]" % (conv["unmapped_cipher"], conv["unmapped_alert"],
                                                      conv["unmapped_version"])) if conv else ""), flush=True)
                with open(runs_path, "a") as rf:
                    rf.write(json.dumps(res) + "\n")

    # ------------------------------------------------------------------ aggregate
    rows = []
    med: dict[tuple[str, str], dict] = {}
    for name in info:
        meta = info[name]["meta"]
        for who in names:
            rs = [r for r in results if r["corpus"] == name and r["peer"] == who and r["rc"] == 0]
            failed = [r for r in results if r["corpus"] == name and r["peer"] == who and r["rc"] != 0]
            if not rs:
                rows.append({"corpus": name, "peer": who, "runs": 0, "failed": len(failed),
                             "error": failed[-1]["summary"] if failed else "not run"})
                continue
            walls = sorted(r["wall"] for r in rs)
            row = {"corpus": name, "peer": who, "runs": len(rs), "failed": len(failed),
                   "wall_median": statistics.median(walls), "wall_min": walls[0], "wall_max": walls[-1],
                   "cpu_median": statistics.median(r["cpu"] for r in rs),
                   "maxrss_mb": max(r["maxrss_kb"] for r in rs) / 1024,
                   "score": worst_score([r["score"] for r in rs]),
                   "packets": meta["packets"], "connections": meta["connections"], "bytes": meta["bytes"]}
            row["pkts_per_s"] = meta["packets"] / row["wall_median"]
            row["conns_per_s"] = meta["connections"] / row["wall_median"]
            convs = [r["convert"] for r in rs if r.get("convert")]
            if convs:
                row["convert"] = convs[-1]
            rows.append(row)
            med[(name, who)] = row
    for row in rows:
        f = med.get((row["corpus"], "floor-libpcap"))
        if row.get("runs") and f:
            row["x_floor"] = row["wall_median"] / f["wall_median"]
    ratios = []
    for name in info:
        for o in ours:
            if (name, o) not in med:
                continue
            mo = med[(name, o)]
            for p in peers:
                if (name, p) not in med:
                    continue
                mp = med[(name, p)]
                ratios.append({"corpus": name, "ours": o, "peer": p,
                               "wall_ratio": mo["wall_median"] / mp["wall_median"],
                               "cpu_ratio": mo["cpu_median"] / mp["cpu_median"] if mp["cpu_median"] else None})
    verdicts = []
    for name in info:
        ref = med.get((name, "suricata-1thread"))
        for o in ours:
            mo = med.get((name, o))
            if not mo:
                verdicts.append("%s %s: no successful run -> FAIL" % (name, o))
                continue
            sc = mo["score"]
            correct = bool(sc) and sc["found"] == sc["truth"] and all(
                sc[k] == sc["truth"] for k in FACTS if sc.get(k) is not None)
            if ref:
                fast = mo["wall_median"] <= ref["wall_median"]
                verdicts.append("%s %s: wall %.2fs vs suricata-1thread %.2fs (x%.2f; CPU x%.2f) %s; correctness %s"
                                " -> %s" % (
                    name, o, mo["wall_median"], ref["wall_median"], mo["wall_median"] / ref["wall_median"],
                    mo["cpu_median"] / ref["cpu_median"] if ref["cpu_median"] else float("nan"),
                    "at least as fast" if fast else "SLOWER", "100%" if correct else "NOT 100%",
                    "PASS" if fast and correct else "FAIL"))
            else:
                verdicts.append("%s %s: suricata-1thread not measured; correctness %s" % (
                    name, o, "100%" if correct else "NOT 100%"))

    # ------------------------------------------------------------------ table
    L = ["| corpus | tool | runs | wall median s (min-max) | CPU s | max RSS MB | packets/s | conns/s | x floor "
         "| found | SNI | version | cipher | alert |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("runs"):
            L.append("| %s | %s | 0 (%d failed) | %s | | | | | | | | | | |" % (
                r["corpus"], r["peer"], r["failed"], r["error"][:60].replace("|", "/")))
            continue
        sc = r["score"]
        bold = "**" if r["peer"].startswith("tlsdiag") else ""
        L.append("| %s | %s%s%s | %d%s | %s (%s-%s) | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["corpus"], bold, r["peer"], bold, r["runs"], " (+%d failed)" % r["failed"] if r["failed"] else "",
            fmt_s(r["wall_median"]), fmt_s(r["wall_min"]), fmt_s(r["wall_max"]), fmt_s(r["cpu_median"]),
            r["maxrss_mb"], "{:,.0f}".format(r["pkts_per_s"]), "{:,.0f}".format(r["conns_per_s"]),
            "%.1f" % r["x_floor"] if r.get("x_floor") else "-", pct(sc, "found"),
            pct(sc, "sni"), pct(sc, "version"), pct(sc, "cipher"), pct(sc, "alert")))
    if ratios:
        L += ["", "Our time / peer time, median wall (median CPU); < 1 = we are faster:", "",
              "| corpus | ours | " + " | ".join(peers) + " |", "|---|---|" + "---|" * len(peers)]
        for name in info:
            for o in ours:
                cells = []
                for p in peers:
                    rr = [x for x in ratios if x["corpus"] == name and x["ours"] == o and x["peer"] == p]
                    cells.append(("%.2f (%s)" % (rr[0]["wall_ratio"], "%.2f" % rr[0]["cpu_ratio"]
                                                 if rr[0]["cpu_ratio"] else "-")) if rr else "-")
                if any(c != "-" for c in cells):
                    L.append("| %s | %s | %s |" % (name, o, " | ".join(cells)))
    L.append("")
    for name in info:
        m = info[name]["meta"]
        L.append("%s: %d connections, %d packets, %.0f MB, bulk ratio %.2f" % (
            name, m["connections"], m["packets"], m["bytes"] / 1e6, m["bulk_ratio_actual"]))
    L.append("")
    L.append("%d rounds, interleaved, order rotated per round; %d cores, %s; our cmd `%s`; "
             "every run timed by bench/rusage_exec (wall, CPU and max RSS of the tool's process tree only); "
             "ours = the summarize process alone (JSONL to a file on %s, conversion untimed); peers = their "
             "../shared/bench runner incl. its post-processing, except suricata-1thread-engine = the Suricata "
             "process alone (eve.json conversion untimed); correctness = worst run vs the truth file." % (
                 a.rounds, os.cpu_count(), platform.release(), a.our_cmd, work))
    L.append("Load average (1 min) before/after: %.2f / %.2f (other work on the machine adds noise)." % (
        load0[0], os.getloadavg()[0]))
    for v in verdicts:
        L.append("- " + v)
    for k, v in ctx.missing.items():
        L.append("- not run: %s (%s)" % (k, v))
    table = "\n".join(L) + "\n"
    doc = {"date": stamp, "cores": os.cpu_count(), "kernel": platform.release(), "rounds": a.rounds,
           "our_cmd": a.our_cmd, "snapshot": SNAPSHOT, "cache": {n: info[n]["cache"] for n in info}, "implementation_loaded": loaded, "names_source": tables[2], "rows": rows, "ratios": ratios, "verdicts": verdicts,
           "missing": ctx.missing, "corpora": {n: info[n]["meta"] for n in info}}
    md_path = os.path.join(work, "results", "%s-table.md" % stamp)
    js_path = os.path.join(work, "results", "%s-table.json" % stamp)
    Path(md_path).write_text(table)
    Path(js_path).write_text(json.dumps(doc, indent=1) + "\n")
    shutil.copyfile(md_path, os.path.join(work, "results", "latest-table.md"))
    if a.repo_results:
        d = HERE / "results"
        d.mkdir(exist_ok=True)
        base = datetime.date.today().isoformat() + ("-" + a.label if a.label else "")
        shutil.copyfile(md_path, d / ("%s-table.md" % base))
        shutil.copyfile(js_path, d / ("%s-table.json" % base))
    print()
    print(table)
    print("# written: %s %s %s" % (md_path, js_path, runs_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
