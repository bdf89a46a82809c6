#!/usr/bin/env bash
# Load-test benchmark: builds release, runs game-server (and the tokio baseline) with
# dummy-client on this machine, and writes every run and the medians as JSON plus a table.
#
#   scripts/loadtest.sh                  # the sweep: both servers side by side, 3 runs each
#   SCENARIOS=sweep-idle KEEP_RUNS=1 scripts/loadtest.sh   # redo its idle part (or sweep-load)
#   RUNS=1 SCENARIOS="500 idle" scripts/loadtest.sh
#   SCENARIOS=ticks scripts/loadtest.sh   # game-server's --tick-ms at 500 clients, then tokio
#   TICK_VALUES="7 20" SCENARIOS=ticks scripts/loadtest.sh
#   SCENARIOS=ws scripts/loadtest.sh      # 500 clients over TCP, then over WebSocket
#   scripts/plot-benchmarks.sh           # the sweep's JSON -> docs/benchmarks/*.svg
#
# The sweep runs, in each repetition and side by side (game-server, then the tokio
# baseline, same client): 50, 100, 200, 500 and 1,500 clients in one room; 2,000 clients in
# rooms of 50 (game-server only: the baseline has one room); 5,000 idle sessions.
#
# Server CPU is read from /proc/PID/stat (utime+stime) over the measured window only
# (after the client's warm-up), RSS from /proc/PID/status. A benchmark, not a test: CI only
# builds it. Traffic stays on 127.0.0.1. Output: $OUT/results.json (every run, medians).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-17777}
ADDR="127.0.0.1:$PORT"
# game-server's browser port (page and WebSocket), on a port of our own.
WS_ADDR="127.0.0.1:${WS_PORT:-17780}"
SCENARIOS=${SCENARIOS:-sweep}
SERVER_FLAGS=${SERVER_FLAGS:-}
SWEEP_CLIENTS=${SWEEP_CLIENTS:-"50 100 200 500 1500"}
ROOMS_OF_50_CLIENTS=${ROOMS_OF_50_CLIENTS:-2000}
IDLE_SESSIONS=${IDLE_SESSIONS:-5000}
# Idle sessions connect at this rate: all at once, a slow machine's accept queue overflows
# and the last to come time out before the server gets to them.
IDLE_CONNECT_RATE=${IDLE_CONNECT_RATE:-500}
TICK_VALUES=${TICK_VALUES:-"0 3 7 10 15 20 30"}
OUT=${OUT:-target/loadtest}
mkdir -p "$OUT"

cargo build --release -q -p game-server -p dummy-client
GAME_SERVER=target/release/game-server
CLIENT=target/release/dummy-client
# The baseline is its own package (outside the workspace); it shares our target directory.
BASELINE=target/release/tokio-chat-baseline
case " $SCENARIOS " in
  *" tokio "* | *" sweep"* | *" ticks "*)
    (cd baselines/tokio-chat && CARGO_TARGET_DIR=../../target cargo build --release -q) ;;
esac
SERVER=$GAME_SERVER
SERVER_NAME=game-server
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo nan; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
load_avg() { cut -d' ' -f1 /proc/loadavg; }

start_server() {
  local ws=()
  if [ "$SERVER" = "$GAME_SERVER" ]; then ws=(--ws-addr "$WS_ADDR"); fi
  # shellcheck disable=SC2086
  RUST_LOG=warn "$SERVER" --addr "$ADDR" "${ws[@]}" $SERVER_FLAGS "$@" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$SERVER_NAME did not start; see $OUT/server.log" >&2
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

# record NAME COUNT SERVER_FLAGS c0 c1 k0 k1 th0 th1 t0 t1 rss_kb load client.json|- idle
# Appends one JSON line to $OUT/runs.jsonl.
record() {
  python3 - "$SERVER_NAME" "$@" "$TICKS" "$RUN" >>"$OUT/runs.jsonl" <<'PY'
import json, sys
(server, name, count, flags, c0, c1, k0, k1, th0, th1, t0, t1, rss, load, path, idle,
 ticks, run) = sys.argv[1:]
r = {}
if path != "-":
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    r = json.loads(lines[-1]) if lines else {}
secs = float(t1) - float(t0)
pct = lambda a, b: (float(b) - float(a)) / float(ticks) / secs * 100
cpu = pct(c0, c1)
per_s = r.get("received_per_s", 0) or 0
before = dict(x.split(":") for x in th0.split())
# Server threads that used over 2 % of a core: the I/O threads, busiest first.
shares = sorted((pct(before[t], v) for t, v in (x.split(":") for x in th1.split()) if t in before),
                reverse=True)
out = {
    "server": server, "scenario": name, "clients": int(count), "flags": flags, "run": int(run),
    "idle": idle == "1", "load_avg": float(load), "seconds": round(secs, 2),
    "server_cpu_pct": round(cpu, 2),
    "threads_pct": [round(x, 1) for x in shares if x > 2],
    "rss_mb": round(int(rss) / 1024, 2),
}
if idle != "1":
    out.update({
        "connected": r.get("connected"), "failed": r.get("failed"),
        "disconnects": r.get("disconnects"), "delivery": r.get("delivery_ratio"),
        "deliveries_per_s": round(per_s), "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
        "p999_ms": r.get("p999_ms"), "max_ms": r.get("max_ms"),
        "cpu_us_per_delivery": round(cpu / 100 / per_s * 1e6, 4) if per_s else None,
        "client_cpu_pct": round(pct(k0, k1), 1),
    })
print(json.dumps(out))
PY
}

# run_load NAME COUNT [server flags...]: one loaded run. TARGET: where the client connects
# (default the TCP port; ws://... for WebSocket).
run_load() {
  local name=$1 count=$2; shift 2
  start_server "$@"
  "$CLIENT" --addr "${TARGET:-$ADDR}" --count "$count" --duration "$DURATION" --warmup "$WARMUP" \
    --json >"$OUT/client.json" 2>"$OUT/client.err" &
  local client=$!
  # Measure the server only inside the client's counted window: connecting thousands of
  # sessions and the warm-up come first, so wait for the first "measuring" progress line
  # (printed about a second into the window), then sample for two seconds less than the
  # window, so the client is still running at the end.
  for _ in $(seq 1200); do grep -q measuring "$OUT/client.err" 2>/dev/null && break; sleep 0.05; done
  local load t0 c0 k0 th0; load=$(load_avg); t0=$(date +%s.%N)
  c0=$(cpu_ticks "$SERVER_PID"); k0=$(cpu_ticks "$client"); th0=$(thread_ticks "$SERVER_PID")
  sleep $((DURATION - 2))
  local t1 c1 k1 th1 rss; t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID"); k1=$(cpu_ticks "$client")
  th1=$(thread_ticks "$SERVER_PID"); rss=$(hwm_kb "$SERVER_PID")
  wait "$client" || echo "dummy-client exited non-zero: $(tail -1 "$OUT/client.err")" >&2
  stop_server
  record "$name" "$count" "$*" "$c0" "$c1" "$k0" "$k1" "$th0" "$th1" "$t0" "$t1" "$rss" "$load" \
    "$OUT/client.json" 0
}

# idle_run NAME COUNT: COUNT sessions that connect and only read. The window starts once
# the connect storm is over (no session of the client still pending, and the server used
# at most one clock tick in each of 5 seconds in a row; or after 240 s: 5,000 players joining one room is
# 12.5 million enter broadcasts, which takes this machine one to two minutes), then CPU over DURATION seconds and the RSS at its end.
idle_run() {
  local name=$1 count=$2
  start_server
  "$CLIENT" --addr "$ADDR" --count "$count" --interval-ms 0 --duration $((DURATION + 250)) \
    --connect-rate "$IDLE_CONNECT_RATE" --warmup 0 --json >"$OUT/client.json" 2>"$OUT/client.err" &
  local client=$! quiet=0 prev now
  prev=$(cpu_ticks "$SERVER_PID")
  for _ in $(seq 240); do
    sleep 1
    now=$(cpu_ticks "$SERVER_PID")
    if [ "$((now - prev))" -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
    # Quiet, and every session has joined or given up (a session that gives up late
    # leaves, and its leave is broadcast to everyone: part of the storm, not of idling).
    if [ "$quiet" -ge 5 ] && ! tail -1 "$OUT/client.err" | grep -q "pending [1-9]"; then break; fi
  done
  local load c0 t0 th0; load=$(load_avg); c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
  th0=$(thread_ticks "$SERVER_PID")
  sleep "$DURATION"
  local c1 t1 th1 rss; c1=$(cpu_ticks "$SERVER_PID"); t1=$(date +%s.%N); rss=$(rss_kb "$SERVER_PID")
  th1=$(thread_ticks "$SERVER_PID")
  kill -INT "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  stop_server
  record "$name" "$count" "" "$c0" "$c1" 0 0 "$th0" "$th1" "$t0" "$t1" "$rss" "$load" - 1
}

# with_baseline COMMAND...: runs COMMAND against the tokio baseline instead.
with_baseline() {
  SERVER=$BASELINE SERVER_NAME=tokio "$@"
}

sweep_load() {
  for n in $SWEEP_CLIENTS; do
    run_load one-room "$n"
    with_baseline run_load one-room "$n"
  done
  run_load rooms-of-50 "$ROOMS_OF_50_CLIENTS" --room-capacity 50
}

sweep_idle() {
  idle_run idle "$IDLE_SESSIONS"
  with_baseline idle_run idle "$IDLE_SESSIONS"
}

# KEEP_RUNS=1 adds to the runs already in $OUT (to redo one part of a sweep).
[ -n "${KEEP_RUNS:-}" ] || rm -f "$OUT"/runs.jsonl
for RUN in $(seq "$RUNS"); do
  for scenario in $SCENARIOS; do
    case $scenario in
      sweep) sweep_load; sweep_idle ;;
      sweep-load) sweep_load ;;
      sweep-idle) sweep_idle ;;
      500) run_load one-room 500 ;;
      # The same 500-client room over TCP and over WebSocket, one after the other.
      ws)
        run_load one-room 500
        TARGET="ws://$WS_ADDR/ws" run_load ws-one-room 500
        ;;
      ticks)
        for t in $TICK_VALUES; do run_load "tick-$t-ms" 500 --tick-ms "$t"; done
        with_baseline run_load one-room 500
        ;;
      scale) for n in 100 300 500 1000 1500 2000; do run_load one-room "$n"; done ;;
      5000rooms) run_load rooms-of-50 5000 --room-capacity 50 ;;
      idle) idle_run idle "$IDLE_SESSIONS" ;;
      tokio)
        for n in 500 1000 1500; do with_baseline run_load one-room "$n"; done
        with_baseline idle_run idle 5000
        ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
done

# Every run and the median of each (server, scenario, clients): JSON and a table.
python3 - "$OUT" "$RUNS" "$SCENARIOS" <<'PY'
import json, os, platform, statistics, sys
out, runs, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))]
groups = {}
for r in records:
    groups.setdefault((r["server"], r["scenario"], r["clients"]), []).append(r)
def median(values):
    values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return round(statistics.median(values), 4) if values else None
medians = []
for (server, scenario, clients), rs in groups.items():
    m = {"server": server, "scenario": scenario, "clients": clients, "runs": len(rs),
         "flags": rs[0]["flags"], "idle": rs[0]["idle"]}
    for key in rs[0]:
        if key not in m and key not in ("run", "threads_pct"):
            m[key] = median([r.get(key) for r in rs])
    m["threads_pct"] = rs[len(rs) // 2]["threads_pct"]
    medians.append(m)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result = {
    "machine": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
    "runs_per_point": runs, "scenarios": scenarios, "runs": records, "medians": medians,
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=1)
hdr = ["server", "scenario", "clients", "delivery", "deliveries/s", "p50 ms", "p99 ms",
       "server CPU %", "CPU µs/delivery", "client CPU %", "RSS MB", "load avg"]
keys = ["server", "scenario", "clients", "delivery", "deliveries_per_s", "p50_ms", "p99_ms",
        "server_cpu_pct", "cpu_us_per_delivery", "client_cpu_pct", "rss_mb", "load_avg"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for m in sorted(medians, key=lambda m: (m["idle"], m["scenario"], m["clients"], m["server"])):
    print("| " + " | ".join("-" if m.get(k) is None else str(m[k]) for k in keys) + f" | (n={m['runs']})")
print(f"\nall runs and medians: {out}/results.json")
PY
