#!/usr/bin/env bash
# Load test for pull jobs: N SRT listeners in one engine, N ffmpeg callers
# replaying an H.264 (720p25, capped at 4.8 Mbit/s; testsrc2 at ultrafast
# comes out near 2.5 Mbit/s) + AAC TS, each cut into 4 s segments.
# Makes the input once (under $PULL_LOAD_DIR, default /tmp/seg-load) and
# prints the engine's CPU over the run and per job, then the engine's counters.
#
#   scripts/pull-load-test.sh N SECONDS      (ENGINE overrides the binary)
set -euo pipefail
N=${1:?usage: pull-load-test.sh N SECONDS}
T=${2:?usage: pull-load-test.sh N SECONDS}
root="$(cd "$(dirname "$0")/.." && pwd)"
ENGINE=${ENGINE:-${CARGO_TARGET_DIR:-$root/target}/release/airlift-engine}
base_dir=${PULL_LOAD_DIR:-/tmp/seg-load}
mkdir -p "$base_dir"
src="$base_dir/load.ts"
if [ ! -s "$src" ]; then
  ffmpeg -v error -nostdin -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine -t $((T + 10)) \
    -c:v libx264 -preset ultrafast -b:v 4800k -maxrate 4800k -bufsize 2M -g 50 -c:a aac -muxrate 5200k \
    -f mpegts "$src"
fi
D="$base_dir/run-$N"
rm -rf "$D"; mkdir -p "$D"; cd "$D"
BASE=$((20000 + RANDOM % 20000))
: > flows.toml
for i in $(seq 1 "$N"); do
  cat >> flows.toml <<EOT
[[pull]]
name = "cam$i"
source = { mode = { listener = { port = $((BASE + i)) } }, allow_unencrypted = true }
segments = { job = "cam$i", target_seconds = 4 }
no_data_timeout_s = 5
EOT
done
AIRLIFT_LOG=warn "$ENGINE" run --flows flows.toml --spool "$D/spool" --max-pulls 64 > engine.out 2> engine.log &
EP=$!
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
sleep 1
ff=()
for i in $(seq 1 "$N"); do
  ffmpeg -v error -nostdin -re -t "$T" -i "$src" -c copy -f mpegts \
    "srt://127.0.0.1:$((BASE + i))?mode=caller&pkt_size=1316&linger=2" 2> "ff$i.log" &
  ff+=($!)
done
sleep 2
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ < "/proc/$EP/stat"
t0=$(date +%s.%N)
sleep $((T - 4))
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ < "/proc/$EP/stat"
t1=$(date +%s.%N)
for p in "${ff[@]}"; do wait "$p" || true; done
sleep 1
kill -INT "$EP"; wait "$EP" || true
trap - EXIT
awk -v n="$N" -v tck="$(getconf CLK_TCK)" -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" 'BEGIN {
  u = (u1 - u0) / tck; s = (s1 - s0) / tck; w = t1 - t0
  printf "pull-load: %d jobs: engine CPU over %.1f s: user %.2f s, sys %.2f s = %.1f%% of one core, %.2f%% per job\n", n, w, u, s, 100 * (u + s) / w, 100 * (u + s) / w / n
}'
echo "pull-load: $(grep -c . engine.log || true) warning lines in the engine log"
grep -E "segments|pull" engine.out | head -40 || true
