#!/bin/sh
# Instructions per message of the analyzer's per-batch code, steady state: the first WARMUP
# messages (default 2000) run uninstrumented, then the timed loop of bench/analyzer/throughput.py
# is instrumented by callgrind.  Stable while the machine is loaded, unlike wall time.
#   sh bench/analyzer/callgrind.sh [N] [WARMUP] [extra throughput.py args]
# It measures the code of the checkout this script is in.
set -e
N=${1:-6000}
W=${2:-2000}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$(python3 -c 'import sys, os; print(os.path.realpath(sys.executable))')
OUT=$(mktemp /tmp/anbench-cg.XXXXXX)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
    "$PY" "$HERE/throughput.py" --callgrind --n "$N" --warmup "$W" --rounds 1 --json "$@" \
    2>"$OUT.err" | tail -1
IR=$(sed -n 's/^totals: *//p' "$OUT")
echo "instructions: $IR for $((N - W)) messages = $(( IR / (N - W) )) per message"
rm -f "$OUT" "$OUT.err"
