#!/bin/sh
# A work queue that runs an external command per item (/bin/true) against `xargs -P2 -n1
# /bin/true` on the same items, in one run.
#
#   tools/bench/queue_command_bench.sh [BUILD_DIR] [ITEMS] [DURABILITY]  (defaults: build, 5000, sync)
#
# Both run two processes at a time. The work queue leases each item, runs /bin/true (stdin:
# none), and commits its completion (at DURABILITY); xargs only runs it. Prints each one's
# seconds and items/s and the ratio troupe / xargs. Everything goes under ./bench-data/queue.
set -eu
build=${1:-build}
items=${2:-5000}
mode=${3:-sync}
troupe="$build/bin/troupe"
[ -x "$troupe" ] || { echo "queue_command_bench: no $troupe (build first)" >&2; exit 64; }
dir="$PWD/bench-data/queue"
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

seq 1 "$items" | sed 's/.*/{"id": &}/' > "$dir/items.jsonl"
cat > "$dir/item.capnp" <<'SCHEMA'
@0xa7c1e2f3d4b50617;
struct Item { id @0 :UInt64; }
SCHEMA
cat > "$dir/app.yaml" <<YAML
app: queue_bench
durability: $mode
schema: {file: item.capnp, payload: Item}
stages:
  - {name: read, type: jsonl_source, path: items.jsonl, output: items}
  - name: run
    type: work_queue
    input: items
    workers: 2
    stdin: none
    batch: {max_items: 1}
    command: [/bin/true]
YAML

now() { date +%s.%N; }
t0=$(now)
seq 1 "$items" | xargs -P2 -n1 /bin/true
t1=$(now)
"$troupe" run "$dir/app.yaml" --data-dir "$dir/data" > "$dir/troupe.log" 2>&1 ||
  { tail -5 "$dir/troupe.log" >&2; exit 1; }
t2=$(now)
grep -q "stopped; everything is committed" "$dir/troupe.log" ||
  { tail -5 "$dir/troupe.log" >&2; exit 1; }

awk -v n="$items" -v a="$t0" -v b="$t1" -v c="$t2" -v mode="$mode" 'BEGIN {
  x = b - a; t = c - b
  printf "xargs -P2 -n1 /bin/true   %d items  %.2f s  %.0f items/s\n", n, x, n / x
  printf "work_queue (/bin/true, %s)  %d items  %.2f s  %.0f items/s\n", mode, n, t, n / t
  printf "ratio troupe / xargs: %.2f\n", x / t
}'
