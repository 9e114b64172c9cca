#!/usr/bin/env bash
# Builds the eenplan-ffi library and generates its Kotlin, Swift and Python bindings in uniffi
# library mode (the metadata is read from the built library itself).
#
#   scripts/bindings.sh [--release] [OUT]    default OUT: target/bindings
#
# Writes OUT/kotlin/nl/eenplan/eenplan_ffi.kt, OUT/swift/{Eenplan.swift, EenplanFFI.h,
# EenplanFFI.modulemap} and OUT/python/eenplan_ffi.py with the library copied beside it (so
# `python3 -c 'import eenplan_ffi'` works from OUT/python). Nothing generated is committed.
# Swift is generated here and in CI but not compiled: no Swift toolchain on these machines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

profile=debug
cargo_profile=()
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    cargo_profile=(--release)
    shift
fi
target="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$target/bindings}"

# Always the whole workspace: building one package re-resolves features and rebuilds shared
# dependencies under other ones.
cargo build --workspace --locked "${cargo_profile[@]}"

case "$(uname -s)" in
    Darwin) library="$target/$profile/libeenplan_ffi.dylib" ;;
    *) library="$target/$profile/libeenplan_ffi.so" ;;
esac
bindgen="$target/$profile/uniffi-bindgen"

rm -rf "$out/kotlin" "$out/swift" "$out/python"
for language in kotlin swift python; do
    "$bindgen" generate --library "$library" --language "$language" --out-dir "$out/$language" \
        --metadata-no-deps --no-format
done
cp "$library" "$out/python/"
echo "bindings in $out: $(cd "$out" && find kotlin swift python -type f | sort | tr '\n' ' ')"
