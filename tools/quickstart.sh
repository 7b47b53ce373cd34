#!/usr/bin/env bash
# Sets everything up and runs the quickstart app: installs the Debian packages (only if missing),
# builds (incrementally), then `troupe run apps/quickstart/app.yaml`. Extra arguments go to
# troupe run (e.g. --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build -j"$(nproc)" -- --no-print-directory >/dev/null

build/bin/troupe run apps/quickstart/app.yaml "$@"
echo "quickstart: priced orders in out/quickstart/priced.jsonl ($(wc -l < out/quickstart/priced.jsonl) lines)"
