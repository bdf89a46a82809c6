#!/usr/bin/env bash
# Load-test benchmark: builds release, runs game-server and dummy-client on this machine
# for each scenario of docs/benchmarks.md, and prints one table (median of RUNS runs).
#
#   scripts/loadtest.sh                 # every scenario, 3 runs each
#   RUNS=1 SCENARIOS="500 idle" scripts/loadtest.sh
#   SCENARIOS=tokio scripts/loadtest.sh  # the tokio baseline (baselines/tokio-chat), same client
#
# Server CPU is read from /proc/PID/stat (utime+stime) over the measured window only
# (after the client's warm-up), RSS from /proc/PID/status. A benchmark, not a test: CI only
# builds it. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-17777}
ADDR="127.0.0.1:$PORT"
SCENARIOS=${SCENARIOS:-"500 ticks scale 5000rooms idle tokio"}
SERVER_FLAGS=${SERVER_FLAGS:-}
OUT=${OUT:-target/loadtest}
mkdir -p "$OUT"

cargo build --release -q -p game-server -p dummy-client
GAME_SERVER=target/release/game-server
SERVER=$GAME_SERVER
CLIENT=target/release/dummy-client
# The baseline is its own package (outside the workspace); it shares our target directory.
BASELINE=target/release/tokio-chat-baseline
case " $SCENARIOS " in
  *" tokio "*) (cd baselines/tokio-chat && CARGO_TARGET_DIR=../../target cargo build --release -q) ;;
esac
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo nan; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

start_server() {
  # shellcheck disable=SC2086
  RUST_LOG=warn "$SERVER" --addr "$ADDR" $SERVER_FLAGS "$@" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "game-server did not start; see $OUT/server.log" >&2
  exit 1
}

stop_server() {
  kill -INT "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# "tid:ticks" of every thread of PID, for the per-thread CPU split.
thread_ticks() {
  for f in /proc/"$1"/task/*/stat; do awk '{print $1 ":" $14 + $15}' "$f" 2>/dev/null; done | tr '\n' ' '
}

# run_load NAME COUNT [server flags...]: one run; appends a result line to $OUT/NAME.tsv
run_load() {
  local name=$1 count=$2; shift 2
  start_server "$@"
  "$CLIENT" --addr "$ADDR" --count "$count" --duration "$DURATION" --warmup "$WARMUP" \
    --json >"$OUT/client.json" 2>"$OUT/client.err" &
  local client=$!
  # Measure the server only inside the client's counted window: connecting thousands of
  # sessions and the warm-up come first, so wait for the first "measuring" progress line
  # (printed about a second into the window), then sample for two seconds less than the
  # window, so the client is still running at the end.
  for _ in $(seq 1200); do grep -q measuring "$OUT/client.err" 2>/dev/null && break; sleep 0.05; done
  local t0 c0 k0 th0; t0=$(date +%s.%N); c0=$(cpu_ticks "$SERVER_PID"); k0=$(cpu_ticks "$client")
  th0=$(thread_ticks "$SERVER_PID")
  sleep $((DURATION - 2))
  local t1 c1 k1 th1 rss; t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID"); k1=$(cpu_ticks "$client")
  th1=$(thread_ticks "$SERVER_PID"); rss=$(hwm_kb "$SERVER_PID")
  wait "$client" || echo "dummy-client exited non-zero: $(tail -1 "$OUT/client.err")" >&2
  stop_server
  python3 - "$name" "$count" "$c0" "$c1" "$k0" "$k1" "$th0" "$th1" "$t0" "$t1" "$rss" "$TICKS" \
    "$OUT/client.json" >>"$OUT/$name.tsv" <<'PY'
import json, sys
name, count, c0, c1, k0, k1, th0, th1, t0, t1, rss, ticks, path = sys.argv[1:]
lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
r = json.loads(lines[-1]) if lines else {}
secs = float(t1) - float(t0)
pct = lambda a, b: (float(b) - float(a)) / float(ticks) / secs * 100
cpu = pct(c0, c1)
per_s = r.get("received_per_s", 0) or 0
us = cpu / 100 / per_s * 1e6 if per_s else float("nan")
# Server threads that used over 2 % of a core: the I/O threads, busiest first.
before = dict(x.split(":") for x in th0.split())
shares = sorted((pct(before[t], v) for t, v in (x.split(":") for x in th1.split()) if t in before), reverse=True)
threads = "/".join(str(round(x)) for x in shares if x > 2) or "-"
print("\t".join(str(x) for x in [name, count, r.get("connected"), r.get("delivery_ratio"),
      round(per_s), r.get("p50_ms"), r.get("p99_ms"), round(cpu, 1), threads, round(us, 3),
      round(pct(k0, k1), 1), round(int(rss) / 1024, 1)]))
PY
}

# idle_run NAME COUNT: COUNT sessions that connect and only read; RSS after they settled.
idle_run() {
  local name=$1 count=$2
  start_server
  "$CLIENT" --addr "$ADDR" --count "$count" --interval-ms 0 --duration $((DURATION + 5)) \
    --warmup 0 --json >"$OUT/client.json" 2>"$OUT/client.err" &
  local client=$!
  sleep 5
  local c0 t0; c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
  sleep "$DURATION"
  local c1 t1 rss; c1=$(cpu_ticks "$SERVER_PID"); t1=$(date +%s.%N); rss=$(rss_kb "$SERVER_PID")
  wait "$client" || true
  stop_server
  python3 -c "import sys; c0,c1,t0,t1,rss,tk=map(float,sys.argv[1:]); print('\t'.join(map(str,['$name',$count,'-','-','-','-','-',round((c1-c0)/tk/(t1-t0)*100,2),'-','-','-',round(rss/1024,1)])))" \
    "$c0" "$c1" "$t0" "$t1" "$rss" "$TICKS" >>"$OUT/$name.tsv"
}

rm -f "$OUT"/*.tsv
for scenario in $SCENARIOS; do
  for _ in $(seq "$RUNS"); do
    case $scenario in
      500) run_load one-room-500 500 ;;
      ticks) for t in 0 5 10 20; do run_load "tick-$t-ms" 500 --tick-ms "$t"; done ;;
      scale) for n in 100 300 500 1000 1500 2000; do run_load "one-room-$n" "$n"; done ;;
      5000rooms)
        run_load rooms-of-50 5000 --room-capacity 50
        run_load rooms-of-50-tick-20-ms 5000 --room-capacity 50 --tick-ms 20
        ;;
      idle) idle_run idle 5000 ;;
      tokio)
        SERVER=$BASELINE
        for n in 500 1000 1500; do run_load "tokio-one-room-$n" "$n"; done
        idle_run tokio-idle 5000
        SERVER=$GAME_SERVER
        ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
done

# Median of the runs per (name, count), one table.
python3 - "$OUT" <<'PY'
import glob, statistics, sys
rows = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.tsv")):
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        rows.setdefault((f[0], f[1]), []).append(f)
def med(vals):
    nums = []
    for v in vals:
        try: nums.append(float(v))
        except ValueError: return sorted(vals)[len(vals) // 2]
    return round(statistics.median(nums), 3)
hdr = ["scenario", "clients", "connected", "delivery", "deliveries/s", "p50 ms", "p99 ms", "server CPU %", "per thread %", "CPU µs/delivery", "client CPU %", "peak RSS MB"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for key in sorted(rows, key=lambda k: (k[0].split('-')[0], int(k[1]))):
    runs = rows[key]
    cols = [key[0], key[1]] + [med([r[i] for r in runs]) for i in range(2, len(hdr))]
    print("| " + " | ".join(str(c) for c in cols) + f" |  (n={len(runs)})")
PY
