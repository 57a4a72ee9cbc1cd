#!/usr/bin/env bash
# Two or more builds of Mnemo (or the Node floor) under the same memcaslap load,
# alternating run by run, to see what one change moved: server CPU per op, split
# into user and kernel time, from /proc/PID/stat over 5 s of each 7 s run.
#
#   bench/compare-builds.sh ROUNDS "MEMCASLAP_ARGS" LABEL=CHECKOUT ...
#
# CHECKOUT is a directory holding a built Mnemo (its bin/mnemo and dist/), or
# "floor" for ../shared/bench/node-floor.mjs. MEMCASLAP_ARGS is added to
# workload a's command line: "" for a, "-d 16" for b. For example, main against
# a worktree of the previous commit (git worktree add ../prev HEAD~1, then
# npm run build there):
#
#   bench/compare-builds.sh 3 "-d 16" before=../prev after=. floor=floor
#
# Servers run on core 0, memcaslap on core 1, as in bench/run.mjs; run it alone.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
rounds=$1
extra=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
floor="$here/../shared/bench/node-floor.mjs"
config=$(mktemp)
output=$(mktemp)
trap 'rm -f "$config" "$output"' EXIT
printf 'key\n64 64 1\nvalue\n32 32 1\ncmd\n0 0.1\n1 0.9\n' > "$config"
ticks=$(getconf CLK_TCK)

for round in $(seq "$rounds"); do
  for build in "$@"; do
    label=${build%%=*}
    dir=${build#*=}
    port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    if [ "$dir" = floor ]; then
      taskset -c 0 node "$floor" "$port" >/dev/null 2>&1 &
    else
      flags=$(head -1 "$dir/bin/mnemo" | sed -n 's|^#!/usr/bin/env -S node||p')
      # shellcheck disable=SC2086 # the flags are words
      taskset -c 0 node $flags "$dir/bin/mnemo" -p "$port" -m 1024 -l 127.0.0.1 >/dev/null 2>&1 &
    fi
    server=$!
    sleep 1.5
    # shellcheck disable=SC2086
    taskset -c 1 memcaslap -s "127.0.0.1:$port" -T 1 -c 50 -w 2k -t 7s -X 32 -F "$config" $extra > "$output" 2>&1 &
    load=$!
    sleep 1.5
    read -r user0 sys0 < <(awk '{print $14, $15}' "/proc/$server/stat")
    sleep 5
    read -r user1 sys1 < <(awk '{print $14, $15}' "/proc/$server/stat")
    wait "$load"
    kill "$server"
    wait "$server" 2>/dev/null || true
    tps=$(grep -o 'TPS: [0-9]*' "$output" | tail -1 | cut -d' ' -f2)
    awk -v r="$round" -v l="$label" -v t="$tps" -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v hz="$ticks" 'BEGIN {
      ops = t * 5; f = 1e6 / hz / ops
      printf "%s %-10s %8d ops/s  CPU %6.2f us/op  (user %5.2f, kernel %5.2f)\n", r, l, t, (u + s) * f, u * f, s * f
    }'
  done
done
