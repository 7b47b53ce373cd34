#!/usr/bin/env bash
# Runs every libFuzzer target of a build for a fixed time each, on a copy of its seed corpus
# (tests/fuzz/corpus/NAME; what a run finds new is kept in BUILD/fuzz-corpus/NAME, not
# committed). A crash, a sanitizer report, a leak or a hang (an input taking over 10 s) fails,
# and the input that did it is left in BUILD/fuzz-findings/ with the command that repeats it.
#   tools/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET]     (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
seconds=${2:-20}
status=0
for exe in "$build"/bin/*_fuzz; do
  name=$(basename "$exe" _fuzz)
  corpus="$build/fuzz-corpus/$name"
  findings="$build/fuzz-findings"
  mkdir -p "$corpus" "$findings"
  cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "== fuzz $name: ${seconds}s"
  if ! "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
       -artifact_prefix="$findings/$name-" -print_final_stats=1 "$corpus" \
       > "$build/fuzz-$name.log" 2>&1; then
    echo "fuzz $name found a failure; repeat it with: $exe $findings/$name-<file>" >&2
    tail -60 "$build/fuzz-$name.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE" "$build/fuzz-$name.log" | tail -2
  fi
done
exit $status
