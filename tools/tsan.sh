#!/usr/bin/env bash
# A ThreadSanitizer build (clang, build-tsan/) of the tests whose threads share memory without
# going through CAF: the store (readers beside the writer, trims, faults), the lease table, the
# registry and the room watch. A data race fails.
#
# The writer, engine and supervision tests are left out: they pass messages through Debian's
# libcaf_core, which is not built with TSan, so every message handed from one actor's thread to
# another is reported as a race (TSan cannot see the mailbox's synchronisation); seen on all six.
# They need a CAF built with -fsanitize=thread, which Debian does not ship.
# Not part of tools/test.sh: a third build does not fit CI's 30 minutes (see README, "Tests").
#   tools/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
dir=build-tsan
if [ ! -f "$dir/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1" -DCMAKE_C_FLAGS="-fsanitize=thread -O1" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    >/dev/null
fi
targets=()
for src in tests/runtime/store/*_test.cpp tests/runtime/writer/room_watch_test.cpp \
           tests/runtime/engine/{lease_table,registry}_test.cpp; do
  targets+=("$(basename "$src" .cpp)")
done
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" -- --no-print-directory >/dev/null
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
status=0
for t in "${targets[@]}"; do
  echo "== $t"
  "$dir/bin/$t" || status=1
done
exit $status
