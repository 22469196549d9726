#!/bin/bash
# Load test for pull jobs: N SRT listeners in one engine, N ffmpeg callers
# replaying a ~5 Mbit/s H.264+AAC TS (make it with:
#   ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine -t 70 -c:v libx264 -preset ultrafast \
#     -b:v 4800k -maxrate 4800k -bufsize 2M -g 50 -c:a aac -muxrate 5200k -f mpegts /tmp/seg-load/load.ts)
# Prints the engine CPU and each job's counters. ENGINE overrides the binary.
# usage: scripts/pull-load-test.sh N SECONDS   (from the repository root)
set -u
ENGINE=${ENGINE:-$(pwd)/target/release/airlift-engine}
N=$1; T=$2; D=/tmp/seg-load/run-$N; rm -rf $D; mkdir -p $D; cd $D
BASE=$((20000 + RANDOM % 20000))
: > flows.toml
for i in $(seq 1 $N); do
  cat >> flows.toml <<EOT
[[pull]]
name = "cam$i"
source = { mode = { listener = { port = $((BASE+i)) } }, allow_unencrypted = true }
segments = { job = "cam$i", target_seconds = 4 }
no_data_timeout_s = 5
EOT
done
AIRLIFT_LOG=warn $ENGINE run --flows flows.toml --max-pulls 16 > engine.out 2> engine.log &
EP=$!
sleep 1
for i in $(seq 1 $N); do
  ffmpeg -v error -nostdin -re -t $T -i /tmp/seg-load/load.ts -c copy -f mpegts "srt://127.0.0.1:$((BASE+i))?mode=caller&pkt_size=1316&linger=2" 2> ff$i.log &
done
sleep 2
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ < /proc/$EP/stat
t0=$(date +%s.%N)
wait_ff() { for j in $(jobs -p); do [ "$j" = "$EP" ] || wait $j; done; }
sleep $((T-4))
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ < /proc/$EP/stat
t1=$(date +%s.%N)
wait_ff
sleep 1
kill -INT $EP; wait $EP
tck=$(getconf CLK_TCK)
python3 -c "
u=($u1-$u0)/$tck; s=($s1-$s0)/$tck; w=$t1-$t0
print(f'engine CPU over {w:.1f} s: user {u:.2f} s, sys {s:.2f} s = {100*(u+s)/w:.1f}% of one core, {100*(u+s)/w/$N:.2f}% per job')"
grep -c . engine.log
cat engine.out
