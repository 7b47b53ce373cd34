#!/usr/bin/env bash
# A stage plugin built outside the repository against an installed copy of Troupe, exactly as
# README's section "Writing a stage outside this repository" shows it:
#
#   install_test.sh cmake|pkg-config BUILD_DIR SOURCE_DIR
#
# 1. `cmake --install BUILD_DIR --prefix <temp>/prefix`;
# 2. writes each README block labelled `FILE`: into a fresh folder, <temp>/wordcount;
# 3. runs there, with only PREFIX set (no TROUPE_PLUGIN_PATH, CMAKE_PREFIX_PATH or
#    PKG_CONFIG_PATH from outside), the block labelled "Build, install and run:" (cmake) or
#    "Or, without CMake:" (pkg-config);
# 4. compares out/counted.jsonl with an oracle jq computes from lines.jsonl, and with the output
#    the README prints.
# cmake also checks that the plugin project found the package in the prefix and installed the
# plugin into its plugin folder, that nothing installed names the build or source tree, and then
# moves the prefix and runs the app again from there. pkg-config also compiles each installed
# public header on its own.
set -euo pipefail

mode=${1:?usage: install_test.sh cmake|pkg-config BUILD_DIR SOURCE_DIR}
build=$(cd "${2:?no build dir}" && pwd)
source_dir=$(cd "${3:?no source dir}" && pwd)
readme=$source_dir/README.md
section="## Writing a stage outside this repository"
case $mode in
  cmake) commands_label="Build, install and run:" ;;
  pkg-config) commands_label="Or, without CMake:" ;;
  *) echo "install_test.sh: unknown mode '$mode' (cmake or pkg-config)" >&2; exit 64 ;;
esac

fail() {
  echo "FAIL ($mode): $*" >&2
  exit 1
}

# The layout the build installs (lib, or lib/<multiarch> for a /usr prefix). README's commands
# assume lib.
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -n "$libdir" ] || fail "no CMAKE_INSTALL_LIBDIR in $build/CMakeCache.txt"

work=$(mktemp -d "${TMPDIR:-/tmp}/troupe-install-$mode.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
project=$work/wordcount

# Prints the fenced block of README's section whose label (the line right before the fence) is
# $1. Lines inside fences are never taken for headings or labels.
block() {
  awk -v section="$section" -v label="$1" '
    fence {
      if (/^```/) { fence = 0; if (want) { found = 1; exit } }
      else if (want) print
      next
    }
    /^## / { in_section = ($0 == section); next }
    !in_section { next }
    /^```/ { fence = 1; want = (previous == label); next }
    { previous = $0 }
    END { if (!found) exit 1 }
  ' "$readme" || fail "README.md has no block labelled '$1' in its section '$section'"
}

# The files of the example: every label of the form `NAME`: in the section.
file_labels() {
  awk -v section="$section" '
    /^```/ { fence = !fence; next }
    fence { next }
    /^## / { in_section = ($0 == section); next }
    in_section && /^`[A-Za-z0-9_.-]+`:$/ { print }
  ' "$readme"
}

# The app's output as the oracle expects it: one object per valid input line, in order, its
# words split as C's isspace splits them, with a running total. Invalid lines are skipped.
oracle() {
  jq -nRc '
    [inputs | fromjson? | objects
     | {text, words: (.text | [scan("[^ \t\n\r\f\u000b]+")] | length)}]
    | foreach .[] as $l (0; . + $l.words; $l + {total: .})
  ' "$1"
}

check_output() { # what
  [ -f out/counted.jsonl ] || fail "$1: no out/counted.jsonl; the run said:
$(tail -n 30 "$work/run.log")"
  oracle lines.jsonl > "$work/expected.jsonl"
  [ -s "$work/expected.jsonl" ] || fail "the oracle is empty: lines.jsonl has no valid line"
  jq -c '{text, words, total}' out/counted.jsonl > "$work/actual.jsonl" ||
    fail "$1: out/counted.jsonl is not JSON lines"
  diff -u "$work/expected.jsonl" "$work/actual.jsonl" >&2 ||
    fail "$1: out/counted.jsonl differs from the oracle (diff above)"
  diff -u "$work/readme_output.jsonl" out/counted.jsonl >&2 ||
    fail "$1: out/counted.jsonl differs from the output README shows (diff above)"
}

# 1. Install.
cmake --install "$build" --prefix "$prefix" > "$work/install.log" ||
  fail "cmake --install $build failed: $(cat "$work/install.log")"

# 2. The project, from README alone.
mkdir -p "$project"
labels=$(file_labels)
[ -n "$labels" ] || fail "README.md's section '$section' labels no files"
while IFS= read -r label; do
  name=${label#\`}
  name=${name%\`:}
  block "$label" > "$project/$name"
done <<< "$labels"
for needed in CMakeLists.txt app.yaml lines.jsonl; do
  [ -f "$project/$needed" ] || fail "README.md's example has no \`$needed\`:"
done
block "$commands_label" > "$work/commands.sh"
block '`out/counted.jsonl` after the run:' > "$work/readme_output.jsonl"

# 3. Build and run as a stranger would: nothing from the environment but PREFIX and the basics.
cd "$project"
run_clean() {
  env -u TROUPE_PLUGIN_PATH -u CMAKE_PREFIX_PATH -u PKG_CONFIG_PATH -u CPATH \
    -u LIBRARY_PATH -u LD_LIBRARY_PATH PREFIX="$prefix" "$@"
}
run_clean bash -euo pipefail "$work/commands.sh" > "$work/run.log" 2>&1 ||
  fail "the README's commands failed; their output:
$(tail -n 40 "$work/run.log")"

# 4. The output.
check_output "the README's commands"

if [ "$mode" = cmake ]; then
  found=$(sed -n 's/^Troupe_DIR:[A-Z]*=//p' build/CMakeCache.txt)
  [ "$found" = "$prefix/$libdir/cmake/Troupe" ] ||
    fail "find_package(Troupe) found '$found', not the package in $prefix"
  [ -f "$prefix/$libdir/troupe/plugins/libtroupe_wordcount.so" ] ||
    fail "cmake --install did not put libtroupe_wordcount.so into $prefix/$libdir/troupe/plugins"

  soname=$(readelf -d "$prefix/$libdir/libtroupe_runtime.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ -n "$soname" ] && [ -e "$prefix/$libdir/$soname" ] ||
    fail "libtroupe_runtime.so has no SONAME, or $prefix/$libdir has no file of that name"
  readelf -d "$prefix/bin/troupe" | grep -q "NEEDED.*\[$soname\]" ||
    fail "the installed troupe does not link $soname"

  leaks=$(grep -rIlF -e "$build" -e "$source_dir" "$prefix" || true)
  [ -z "$leaks" ] || fail "installed files name the build or source tree: $leaks"
  if readelf -d "$prefix/bin/troupe" "$prefix/$libdir/libtroupe_runtime.so" |
      grep -E "RPATH|RUNPATH" | grep -qF -e "$build" -e "$source_dir"; then
    fail "an installed RUNPATH names the build or source tree"
  fi

  # Relocatable: the same prefix, moved, still finds its library and its plugin folder.
  mv "$prefix" "$work/moved"
  rm -rf out troupe-data
  env -u TROUPE_PLUGIN_PATH "$work/moved/bin/troupe" run app.yaml > "$work/run.log" 2>&1 ||
    fail "troupe from the moved prefix failed:
$(tail -n 30 "$work/run.log")"
  check_output "troupe run from the moved prefix"
else
  headers=("$prefix"/include/troupe/*.hpp)
  [ -e "${headers[0]}" ] || fail "no headers in $prefix/include/troupe"
  for h in "${headers[@]}"; do
    printf '#include <troupe/%s>\n' "${h##*/}" |
      run_clean env PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" \
        sh -c 'c++ -std=c++17 -fsyntax-only $(pkg-config --cflags troupe) -x c++ -' \
        > "$work/header.log" 2>&1 ||
      fail "the installed header troupe/${h##*/} does not compile on its own:
$(head -n 20 "$work/header.log")"
  done
fi
echo "ok ($mode): a plugin built against $prefix ran; its output matches the oracle"
