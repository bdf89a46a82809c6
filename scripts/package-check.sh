#!/usr/bin/env bash
# Packages every crate meant for crates.io and proves each package stands on its own:
# `cargo package` builds it from the packed files alone (its verification step), then the
# crate's tests run from the unpacked package, so a test that reads a file the package
# leaves out fails here and not for a user.
#
#   scripts/package-check.sh                 # server-core and packet-gen
#   scripts/package-check.sh packet-gen      # one crate
set -euo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
[ ${#crates[@]} -gt 0 ] || crates=(server-core packet-gen)

unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT

for crate in "${crates[@]}"; do
  version=$(cargo pkgid -p "$crate" | sed 's/.*[#@]//')
  echo "-- cargo package -p $crate ($version)"
  # --allow-dirty: this checks the package, it publishes nothing.
  cargo package -p "$crate" --allow-dirty --locked
  # -m: fresh mtimes. The packed files carry fixed ones, so cargo would otherwise take
  # the test binaries of an earlier run (another unpack dir, older sources) as up to date.
  tar -xzmf "target/package/$crate-$version.crate" -C "$unpacked"
  # The workspace lockfile pins the same dependency versions the workspace tests with.
  cp Cargo.lock "$unpacked/$crate-$version/"
  echo "-- tests of the unpacked $crate package"
  # --all-features: server-core's tests of its optional WebSocket transport run too.
  CARGO_TARGET_DIR=target/package-tests \
    cargo test --manifest-path "$unpacked/$crate-$version/Cargo.toml" --all-features -q
done
