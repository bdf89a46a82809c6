#!/usr/bin/env bash
# Draws the load-test sweep (scripts/loadtest.sh's results.json) as two SVG charts, both
# servers on each: p99 latency vs clients, and server CPU per delivered packet vs clients.
# Medians with the range of the runs as error bars.
#
#   scripts/plot-benchmarks.sh [RESULTS_JSON] [OUT_DIR]
#   # defaults: target/loadtest/results.json docs/benchmarks
#
# gnuplot (Debian: gnuplot-nox) draws: packaged everywhere, writes SVG itself, and the
# same input gives the same file, so the committed charts only change with the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=${1:-target/loadtest/results.json}
OUT_DIR=${2:-docs/benchmarks}
command -v gnuplot >/dev/null || { echo "needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 2; }
mkdir -p "$OUT_DIR"
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

# One data file per (server, scenario, metric): clients, median, lowest run, highest run.
python3 - "$RESULTS" "$DATA" <<'PY'
import json, sys
results, data = json.load(open(sys.argv[1])), sys.argv[2]
series = {}
for r in results["runs"]:
    if r["idle"] or r["scenario"] not in ("one-room", "rooms-of-50"):
        continue
    for metric in ("p99_ms", "cpu_us_per_delivery"):
        if r.get(metric) is not None:
            key = (r["server"], r["scenario"], metric)
            series.setdefault(key, {}).setdefault(r["clients"], []).append(r[metric])
for (server, scenario, metric), points in series.items():
    with open(f"{data}/{server}.{scenario}.{metric}.dat", "w") as f:
        for clients in sorted(points):
            v = sorted(points[clients])
            f.write(f"{clients} {v[len(v) // 2] if len(v) % 2 else (v[len(v)//2-1] + v[len(v)//2]) / 2} {v[0]} {v[-1]}\n")
PY

plot() { # plot METRIC FILE TITLE YLABEL
  local metric=$1 file=$2 title=$3 ylabel=$4 lines=() f
  for f in "game-server.one-room:game-server, one room:1" "tokio.one-room:tokio baseline, one room:2" \
           "game-server.rooms-of-50:game-server, rooms of 50:3"; do
    IFS=: read -r stem label color <<<"$f"
    [ -s "$DATA/$stem.$metric.dat" ] &&
      lines+=("'$DATA/$stem.$metric.dat' using 1:2:3:4 with yerrorlines linecolor $color pointtype 7 title '$label'")
  done
  local joined; joined=$(IFS=,; echo "${lines[*]}")
  gnuplot <<GP
set terminal svg size 720,440 font "sans,13" background rgb "white"
set output "$OUT_DIR/$file"
set title "$title"
set xlabel "clients (each chats 4 times a second; one room: everyone hears everyone)"
set ylabel "$ylabel"
set logscale xy
set xrange [40:2500]
set xtics (50, 100, 200, 500, 1000, 2000)
set grid
set key top left
plot $joined
GP
}

plot p99_ms p99.svg "p99 latency, send to own echo (median of runs, bars: range)" "p99 (ms)"
plot cpu_us_per_delivery cpu.svg "server CPU per delivered packet (median of runs, bars: range)" "CPU µs per delivery"
echo "wrote $OUT_DIR/p99.svg and $OUT_DIR/cpu.svg"
