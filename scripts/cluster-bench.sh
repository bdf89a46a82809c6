#!/usr/bin/env bash
# Cluster benchmark: the same load (COUNT dummy-client sessions in one room, chat every
# 250 ms) on one game-server process, on one process with --cluster, and split over two
# processes sharing the room through one redis-server; medians of RUNS runs, one table.
# p50/p99 are dummy-client's send -> own broadcast (the sender's server only); "crossing"
# is send -> receipt on the other server (one chat in 64 timed).
#
#   scripts/cluster-bench.sh
#   RUNS=1 DURATION=5 COUNT=200 scripts/cluster-bench.sh
#   SERVER_FLAGS="--tick-ms 7" scripts/cluster-bench.sh
#
# CPU of the game-servers, redis-server and the client is read from /proc/PID/stat
# (utime+stime) over the measured window only; Redis commands and bytes from INFO. A
# benchmark, not a test: it needs redis-server, and CI does not run it. Traffic stays on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
COUNT=${COUNT:-500}
REDIS_PORT=${REDIS_PORT:-16379}
PORTS=(17781 17782)
OUT=${OUT:-target/cluster-bench}
# Flags for every game-server of every scenario (e.g. SERVER_FLAGS="--tick-ms 7").
SERVER_FLAGS=${SERVER_FLAGS:-}
mkdir -p "$OUT"
command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }

cargo build --release -q -p game-server -p dummy-client
SERVER=target/release/game-server
CLIENT=target/release/dummy-client
TICKS=$(getconf CLK_TCK)
PIDS=()

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo nan; }
redis_info() { redis-cli -p "$REDIS_PORT" INFO "$1" | tr -d '\r'; }
# "commands publishes in_bytes out_bytes" from INFO.
redis_counts() {
  local stats cmds
  stats=$(redis_info stats); cmds=$(redis_info commandstats)
  echo "$(echo "$stats" | awk -F: '/^total_commands_processed/ {print $2}')" \
       "$(echo "$cmds" | sed -n 's/^cmdstat_publish:calls=\([0-9]*\).*/\1/p' | grep . || echo 0)" \
       "$(echo "$stats" | awk -F: '/^total_net_input_bytes/ {print $2}')" \
       "$(echo "$stats" | awk -F: '/^total_net_output_bytes/ {print $2}')"
}

cleanup() { for p in "${PIDS[@]}" ${REDIS_PID:-}; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$OUT" >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done

start_servers() { # start_servers N [flags...]: N game-servers on PORTS
  local n=$1; shift
  PIDS=()
  for i in $(seq 0 $((n - 1))); do
    # shellcheck disable=SC2086
    RUST_LOG=warn "$SERVER" --addr "127.0.0.1:${PORTS[$i]}" --ws-addr off $SERVER_FLAGS "$@" \
      >"$OUT/server-$i.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$i]}") 2>/dev/null; then break; fi
      sleep 0.05
    done
  done
}

stop_servers() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}

# run NAME N [server flags...]: one run over N processes; appends a line to $OUT/NAME.tsv
run() {
  local name=$1 n=$2; shift 2
  start_servers "$n" "$@"
  local addrs; addrs=$(for i in $(seq 0 $((n - 1))); do printf '127.0.0.1:%s,' "${PORTS[$i]}"; done)
  "$CLIENT" --addr "${addrs%,}" --count "$COUNT" --duration "$DURATION" --warmup "$WARMUP" \
    --json >"$OUT/client.json" 2>"$OUT/client.err" &
  local client=$!
  for _ in $(seq 1200); do grep -q measuring "$OUT/client.err" 2>/dev/null && break; sleep 0.05; done
  local t0 s0=0 r0 k0 i0; t0=$(date +%s.%N)
  for p in "${PIDS[@]}"; do s0=$((s0 + $(cpu_ticks "$p"))); done
  r0=$(cpu_ticks "$REDIS_PID"); k0=$(cpu_ticks "$client"); i0=$(redis_counts)
  sleep $((DURATION - 2))
  local t1 s1=0 r1 k1 i1; t1=$(date +%s.%N)
  for p in "${PIDS[@]}"; do s1=$((s1 + $(cpu_ticks "$p"))); done
  r1=$(cpu_ticks "$REDIS_PID"); k1=$(cpu_ticks "$client"); i1=$(redis_counts)
  wait "$client" || echo "dummy-client exited non-zero: $(tail -1 "$OUT/client.err")" >&2
  stop_servers
  python3 - "$name" "$n" "$t0" "$t1" "$s0" "$s1" "$r0" "$r1" "$k0" "$k1" "$i0" "$i1" "$TICKS" \
    "$OUT/client.json" >>"$OUT/$name.tsv" <<'PY'
import json, sys
name, n, t0, t1, s0, s1, r0, r1, k0, k1, i0, i1, ticks, path = sys.argv[1:]
lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
r = json.loads(lines[-1]) if lines else {}
secs = float(t1) - float(t0)
pct = lambda a, b: (float(b) - float(a)) / float(ticks) / secs * 100
server, redis, client = pct(s0, s1), pct(r0, r1), pct(k0, k1)
cmds, pubs, bin_, bout = [(int(b) - int(a)) / secs for a, b in zip(i0.split(), i1.split())]
per_s = r.get("received_per_s", 0) or 0
window = per_s / (r.get("received") or 1) if per_s else 0  # 1 / window seconds
per_us = lambda cpu: cpu / 100 / per_s * 1e6 if per_s else float("nan")
print("\t".join(str(x) for x in [name, n, r.get("delivery_ratio"), round(per_s),
      round((r.get("received_crossed") or 0) * window), r.get("p50_ms"), r.get("p99_ms"),
      r.get("cross_p50_ms"), r.get("cross_p99_ms"),
      round(server, 1), round(redis, 1), round(client, 1), round(cmds), round(pubs),
      round((bin_ + bout) / 1e6, 2), round(per_us(server), 3), round(per_us(redis), 3)]))
PY
}

rm -f "$OUT"/*.tsv
for _ in $(seq "$RUNS"); do
  run one-process 1
  run one-process-clustered 1 --cluster "redis://127.0.0.1:$REDIS_PORT"
  run two-processes 2 --cluster "redis://127.0.0.1:$REDIS_PORT"
done

python3 - "$OUT" "$COUNT" <<'PY'
import glob, statistics, sys
rows = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.tsv")):
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        rows.setdefault(f[0], []).append(f)
hdr = ["scenario", "processes", "delivery", "deliveries/s", "crossed/s", "p50 ms", "p99 ms",
       "crossing p50 ms", "crossing p99 ms",
       "game-server CPU %", "redis CPU %", "client CPU %", "Redis commands/s", "PUBLISH/s",
       "Redis MB/s in+out", "server µs/delivery", "Redis µs/delivery"]
print(f"{sys.argv[2]} sessions in one room, chat every 250 ms; medians of the runs")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
order = ["one-process", "one-process-clustered", "two-processes"]
for name in sorted(rows, key=lambda k: order.index(k) if k in order else 99):
    runs = rows[name]
    cols = [name, runs[0][1]] + [round(statistics.median(float(r[i]) for r in runs), 3) for i in range(2, len(hdr))]
    print("| " + " | ".join(str(c) for c in cols) + f" |  (n={len(runs)})")
PY
