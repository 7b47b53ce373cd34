#!/bin/sh
# Durable ingest: http_source at `sync` against Redis XADD with appendfsync always, in one run.
#
#   tools/bench/ingest_bench.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]   (defaults: build, 10, 50)
#
# Troupe: an app of http_source -> jsonl_sink at durability sync; troupe_ingest_load runs
# CONNECTIONS keep-alive clients posting bodies of 16 JSON lines of 100 bytes, counting records
# answered 200 (committed and fsynced). Redis: redis-server on loopback with appendonly yes,
# appendfsync always (an fsync per write batch), and redis-benchmark doing XADD with the same
# number of clients and a pipeline of 16 (16 records per round trip, as a body is), 100-byte
# values. Prints both rates and the ratio. Installs redis-server (Debian) when it is missing.
# Everything goes under ./bench-data/ingest (not /tmp: a tmpfs makes fsync free).
set -eu
build=${1:-build}
seconds=${2:-10}
clients=${3:-50}
troupe="$build/bin/troupe"
load="$build/bin/troupe_ingest_load"
for exe in "$troupe" "$load"; do
  [ -x "$exe" ] || { echo "ingest_bench: no $exe (build first)" >&2; exit 64; }
done
if ! command -v redis-server > /dev/null || ! command -v redis-benchmark > /dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    redis-server redis-tools > /dev/null
fi
dir="$PWD/bench-data/ingest"
rm -rf "$dir"
mkdir -p "$dir/redis"
node_pid=""; redis_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2> /dev/null && wait "$node_pid" 2> /dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null && wait "$redis_pid" 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- Redis
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
  --appendfsync always --save '' --daemonize no > "$dir/redis.log" 2>&1 &
redis_pid=$!
i=0; until redis-cli -p "$rport" ping > /dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || { echo "redis did not start" >&2; exit 1; }; sleep 0.1; done
value=$(printf '%0100d' 0 | tr 0 x)
requests=$((seconds * 300000))
redis_rate=$(redis-benchmark -p "$rport" -c "$clients" -P 16 -n "$requests" -q \
  XADD bench '*' text "$value" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
kill "$redis_pid"; wait "$redis_pid" 2> /dev/null || true; redis_pid=""

# --- Troupe
tport=$(free_port)
cat > "$dir/note.capnp" <<'SCHEMA'
@0xc4d5e6f708192a3b;
struct Note { id @0 :UInt64; text @1 :Text; }
SCHEMA
cat > "$dir/app.yaml" <<YAML
app: ingest_bench
durability: sync
admin: {enabled: false}
schema: {file: note.capnp, payload: Note}
stages:
  - {name: ingest, type: http_source, address: 127.0.0.1:$tport, output: notes}
  - {name: sink, type: jsonl_sink, input: notes, path: out.jsonl}
YAML
"$troupe" run "$dir/app.yaml" --data-dir "$dir/data" > "$dir/node.log" 2>&1 &
node_pid=$!
i=0; until grep -q "listening on" "$dir/node.log"; do i=$((i+1)); [ $i -lt 100 ] || { cat "$dir/node.log" >&2; exit 1; }; sleep 0.1; done
troupe_line=$("$load" 127.0.0.1 "$tport" "$clients" "$seconds" 16 100)
troupe_rate=$(echo "$troupe_line" | sed 's/.*records_per_s=\([0-9]*\).*/\1/')

echo "redis XADD, appendfsync always, $clients clients, pipeline 16: ${redis_rate} records/s"
echo "troupe http_source, sync, $clients clients, bodies of 16: $troupe_line"
python3 -c "print('ratio troupe/redis: %.2f (target >= 1.5)' % ($troupe_rate / float('$redis_rate')))"
