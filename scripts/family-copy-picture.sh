#!/usr/bin/env bash
# Regenerates docs/family-copy-page1.png: the first page of the family's copy of a demo plan
# (the Jansen family, adopted as version 2), as headless Chromium renders its HTML at A4 width.
#
#   scripts/family-copy-picture.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
"$root/scripts/install-test-deps.sh" print
cargo build --workspace --quiet --manifest-path "$root/Cargo.toml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target/debug/family_copy_demo" "$work/jansen.html"
# 794 × 1123 CSS pixels is A4 at 96 dpi; the print stylesheet's @page margins do not apply
# on screen, so the body keeps its own width and padding.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=794,1123 --screenshot="$root/docs/family-copy-page1.png" "file://$work/jansen.html" 2>/dev/null
echo "wrote docs/family-copy-page1.png"
