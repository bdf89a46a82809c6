#!/usr/bin/env bash
# Before/after benchmark: game-server built at two git revisions, driven by this
# checkout's dummy-client, alternating A B A B ... in one run so both see the same machine
# load; prints every run and the medians. A benchmark, not a test.
#
#   scripts/compare-revisions.sh REV_A REV_B [COUNT] [dummy-client flags...]
#   scripts/compare-revisions.sh 95beca6 HEAD 500
#   scripts/compare-revisions.sh 95beca6 HEAD 100 --flooders 1 --flood-mode chat
#
# ROUNDS (3), DURATION (10 s), WARMUP (2 s), PORT, SERVER_FLAGS are read from the
# environment. Server CPU comes from /proc/PID/stat over the measured window, as in
# scripts/loadtest.sh; "us/delivery" is server CPU per packet the honest clients received.
set -euo pipefail
cd "$(dirname "$0")/.."

REV_A=${1:?usage: compare-revisions.sh REV_A REV_B [COUNT] [client flags...]}
REV_B=${2:?usage: compare-revisions.sh REV_A REV_B [COUNT] [client flags...]}
COUNT=${3:-500}
shift $(( $# < 3 ? $# : 3 ))
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-18777}
OUT=target/compare
mkdir -p "$OUT"

# Builds game-server at a revision in a throwaway worktree; prints the binary's path.
build_at() {
  local rev sha dir
  rev=$1
  sha=$(git rev-parse --short "$rev")
  dir="$OUT/src-$sha"
  if [ ! -x "$OUT/game-server-$sha" ]; then
    rm -rf "$dir"
    git worktree add -q --detach "$dir" "$sha"
    (cd "$dir" && CARGO_TARGET_DIR="$PWD/../target-$sha" cargo build --release -q -p game-server)
    cp "$OUT/target-$sha/release/game-server" "$OUT/game-server-$sha"
    git worktree remove --force "$dir"
  fi
  echo "$OUT/game-server-$sha"
}

SERVER_A=$(build_at "$REV_A")
SERVER_B=$(build_at "$REV_B")
cargo build --release -q -p dummy-client
CLIENT=target/release/dummy-client
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

: >"$OUT/runs.tsv"
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    server=$SERVER_A
    [ "$side" = B ] && server=$SERVER_B
    # shellcheck disable=SC2086
    RUST_LOG=warn "$server" --addr "127.0.0.1:$PORT" ${SERVER_FLAGS:-} >"$OUT/server-$side.log" 2>&1 &
    spid=$!
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
      sleep 0.05
    done
    "$CLIENT" --addr "127.0.0.1:$PORT" --count "$COUNT" --duration "$DURATION" \
      --warmup "$WARMUP" --json "$@" >"$OUT/client.json" 2>"$OUT/client.err" &
    cpid=$!
    for _ in $(seq 1200); do grep -q measuring "$OUT/client.err" 2>/dev/null && break; sleep 0.05; done
    t0=$(date +%s.%N); c0=$(cpu_ticks "$spid")
    sleep $((DURATION - 2))
    t1=$(date +%s.%N); c1=$(cpu_ticks "$spid")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$spid/status")
    wait "$cpid" || true
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$round" "$c0" "$c1" "$t0" "$t1" "$hwm" \
      "$(tail -1 "$OUT/client.json")" >>"$OUT/runs.tsv"
  done
done

python3 - "$OUT/runs.tsv" "$TICKS" "$REV_A" "$REV_B" "$(uptime)" <<'PY'
import json, statistics, sys
path, ticks, rev_a, rev_b, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = {"A": [], "B": []}
for line in open(path):
    side, rnd, c0, c1, t0, t1, hwm, js = line.rstrip("\n").split("\t", 7)
    j = json.loads(js)
    secs = float(t1) - float(t0)
    cpu = (float(c1) - float(c0)) / ticks / secs
    rows[side].append({
        "cpu %": 100 * cpu,
        "us/delivery": 1e6 * cpu / max(j["received_per_s"], 1),
        "delivery": j["delivery_ratio"],
        "p50 ms": j["p50_ms"],
        "p99 ms": j["p99_ms"],
        "disconnects": j["disconnects"],
        "RSS MB": int(hwm) / 1024,
        "flooders cut": j.get("flooders_cut", 0),
    })
keys = list(rows["A"][0].keys())
print(f"A = {rev_a}, B = {rev_b}; {load.strip()}")
print("run      " + "".join(f"{k:>14}" for k in keys))
for side in "AB":
    for i, r in enumerate(rows[side], 1):
        print(f"{side} #{i:<5}" + "".join(f"{r[k]:>14.3f}" for k in keys))
for side in "AB":
    med = {k: statistics.median(r[k] for r in rows[side]) for k in keys}
    print(f"{side} median" + "".join(f"{med[k]:>14.3f}" for k in keys))
PY
