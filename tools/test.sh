#!/usr/bin/env bash
# Sets everything up and runs every test: installs the Debian packages (only if missing), builds
# and runs the suite twice: a release build with the full end-to-end crash tests, and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (clang, with libFuzzer's coverage) with
# smaller end-to-end counts, whose fuzz targets then run for a fixed time each (tools/fuzz.sh).
# Incremental: a second run only rebuilds what changed.
#   TROUPE_TEST_SANITIZE=0 tools/test.sh   skips the sanitizer build (quicker local runs)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
jobs=$(nproc)

# Test cases are found by running each test executable (catch_discover_tests): an executable
# that cannot even list its cases (a sanitizer refusing to start it, say) would silently
# contribute none. So every build must list as many cases as the test sources hold.
cases_listed() { ctest --test-dir "$1" -N | sed -n 's/^Total Tests: //p'; }

build_and_test() { # dir, extra cmake args...
  local dir=$1; shift
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" "$@" >/dev/null
  fi
  cmake --build "$dir" -j"$jobs" -- --no-print-directory >/dev/null
  local listed
  listed=$(cases_listed "$dir")
  if [ -n "${expected_cases:-}" ] && [ "$listed" != "$expected_cases" ]; then
    echo "error: $dir lists $listed test cases, the release build $expected_cases:" \
         "some test executable fails before it runs (see its --list-test-names-only)" >&2
    exit 1
  fi
  ctest --test-dir "$dir" -j"$jobs" --output-on-failure --timeout 900
}

echo "== release build"
build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo
expected_cases=$(cases_listed build)

if [ "${TROUPE_TEST_SANITIZE:-1}" != 0 ]; then
  echo "== sanitizer build (address, undefined)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TROUPE_E2E_SCALE=small
  CC=clang CXX=clang++ build_and_test build-sanitize -DCMAKE_BUILD_TYPE=Debug \
    -DTROUPE_SANITIZE=ON -DTROUPE_FUZZ=ON
  echo "== fuzzing (${TROUPE_FUZZ_SECONDS:-20} s a target)"
  tools/fuzz.sh build-sanitize "${TROUPE_FUZZ_SECONDS:-20}"
fi
