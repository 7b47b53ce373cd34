#!/usr/bin/env bash
# Installs the Debian packages Troupe builds and tests with. Idempotent: when every package is
# already installed it does nothing (no apt-get update, no network).
set -euo pipefail

# jq: the oracle of tests/install; file (with build-essential's dpkg-dev and binutils): what
# `cpack -G DEB` runs to compute the package's dependencies; ffmpeg: what apps/thumbnailer runs
# (and its test makes videos with); prometheus: promtool, which checks the /metrics text in tests;
# chromium: the headless browser the dashboard's test loads it in; libfuse3-dev and fuse3: the
# power-cut file system of tests/powercut; clang and its runtime: the sanitizer build, which is
# also the libFuzzer build; libhowardhinnant-date-dev and tzdata: time zones of cron schedules;
# sqlite3: the oracle of apps/nightly's test; openssl: the certificates of the TLS links' test.
packages=(
  build-essential cmake pkg-config
  libcaf-dev capnproto libcapnp-dev liblmdb-dev lmdb-utils catch2
  libyaml-cpp-dev libcli11-dev libfmt-dev libxxhash-dev libsimdjson-dev
  libcpp-httplib-dev nlohmann-json3-dev zlib1g-dev
  jq file python3 ffmpeg prometheus chromium
  libfuse3-dev fuse3 clang libclang-rt-14-dev
  libhowardhinnant-date-dev tzdata sqlite3 openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
