#!/usr/bin/env bash
# Sets everything up and runs every test: installs the Debian packages (only if missing), builds
# and runs the suite twice: a release build with the full end-to-end crash tests, and an
# AddressSanitizer + UndefinedBehaviorSanitizer build with smaller end-to-end counts.
# Incremental: a second run only rebuilds what changed.
#   TROUPE_TEST_SANITIZE=0 tools/test.sh   skips the sanitizer build (quicker local runs)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
jobs=$(nproc)

build_and_test() { # dir, extra cmake args...
  local dir=$1; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" "$@" >/dev/null
  fi
  cmake --build "$dir" -j"$jobs" -- --no-print-directory >/dev/null
  ctest --test-dir "$dir" -j"$jobs" --output-on-failure --timeout 900
}

echo "== release build"
build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ "${TROUPE_TEST_SANITIZE:-1}" != 0 ]; then
  echo "== sanitizer build (address, undefined)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TROUPE_E2E_SCALE=small
  build_and_test build-asan -DCMAKE_BUILD_TYPE=Debug -DTROUPE_SANITIZE=ON
fi
