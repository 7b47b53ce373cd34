#!/bin/sh
# Word count (apps/wordcount) against mawk counting the same words in the same file, in one run.
#
#   tools/bench/wordcount_bench.sh [BUILD_DIR] [MEGABYTES]     (defaults: build, 42)
#
# The text is real English: the machine's own manual pages (/usr/share/man, decompressed, roff
# markup and all) up to MEGABYTES. A word is a maximal run of ASCII letters, lower-cased, for
# both. Prints each one's seconds and MB/s, the ratio troupe / mawk, and checks that both found
# the same counts. Everything goes under ./bench-data/wordcount (removed at the end).
set -eu
build=${1:-build}
mb=${2:-42}
troupe="$build/bin/troupe"
app="$(cd "$(dirname "$0")/../../apps/wordcount" && pwd)/app.yaml"
[ -x "$troupe" ] || { echo "wordcount_bench: no $troupe (build first)" >&2; exit 64; }
command -v mawk > /dev/null || { echo "wordcount_bench: mawk is not installed" >&2; exit 64; }
dir="$PWD/bench-data/wordcount"
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

find /usr/share/man -name '*.gz' | sort | while read -r f; do zcat "$f" 2> /dev/null || true; done |
  head -c $((mb * 1000000)) > "$dir/corpus.txt" || true
bytes=$(wc -c < "$dir/corpus.txt")
[ "$bytes" -ge $((mb * 1000000)) ] || echo "wordcount_bench: only $bytes bytes of manual pages here" >&2

now() { date +%s.%N; }
t0=$(now)
LC_ALL=C mawk '{ $0 = tolower($0); gsub(/[^a-z]+/, " "); for (i = 1; i <= NF; i++) c[$i]++ }
  END { for (w in c) print w, c[w] }' "$dir/corpus.txt" > "$dir/mawk.txt"
t1=$(now)
INPUT="$dir/corpus.txt" OUT_DIR="$dir/out" "$troupe" run "$app" --data-dir "$dir/data" \
  > "$dir/troupe.log" 2>&1 || { tail -5 "$dir/troupe.log" >&2; exit 1; }
t2=$(now)

# The same counts? (troupe writes {"word":"w","count":n} lines.)
sed 's/^{"word":"\([a-z]*\)","count":\([0-9]*\)}$/\1 \2/' "$dir/out/counts.jsonl" | LC_ALL=C sort > "$dir/troupe.txt"
LC_ALL=C sort "$dir/mawk.txt" > "$dir/mawk.sorted"
if cmp -s "$dir/troupe.txt" "$dir/mawk.sorted"; then same=yes; else same=NO; fi

awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v same="$same" \
  -v words="$(wc -l < "$dir/mawk.txt")" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  m = t1 - t0; t = t2 - t1
  printf "# %d bytes of manual pages, %d distinct words, load average %s\n", b, words, load
  printf "mawk     %6.2f s  %6.1f MB/s\n", m, b / m / 1e6
  printf "troupe   %6.2f s  %6.1f MB/s  (apps/wordcount: 2 mappers, 8 shuffle partitions, 2 reducers, durability process)\n", t, b / t / 1e6
  printf "same counts: %s\n", same
  printf "target troupe >= 2x mawk: %s (%.2fx)\n", (m / t >= 2 ? "PASS" : "FAIL"), m / t
}'
[ "$same" = yes ]
