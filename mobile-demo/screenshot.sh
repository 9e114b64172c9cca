#!/usr/bin/env bash
# Takes mobile-demo/screenshot.png: the headless home visit (run-script.sh) with both phones
# shown on a virtual X display (Xvfb) and pictured by the app itself at the moments that
# matter (the worker offline with pending changes, the regisseur's conflicts, the plan with
# regie offered at the escalation, the Zorg- en Veiligheidshuis' regie screen after accepting,
# the worker's start screen — the agenda — with an action of his this week, and the
# regisseur's "Beoordelen en vaststellen" after adopting, with the family's copy). Installs
# xvfb and xauth once (apt; needs root or sudo).
#
#   mobile-demo/screenshot.sh [FILE]        default FILE: mobile-demo/screenshot.png
set -euo pipefail
demo="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$demo/screenshot.png}")"

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "screenshot.sh: need root to run: $*" >&2
        return 1
    fi
}
missing=()
command -v xvfb-run >/dev/null || missing+=(xvfb)
command -v xauth >/dev/null || missing+=(xauth)
if ((${#missing[@]})); then
    echo "screenshot.sh: apt-get install ${missing[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# A screen large enough for four 390×844 phone windows side by side.
xvfb-run --auto-servernum --server-args="-screen 0 1640x960x24" "$demo/run-script.sh" --screenshot "$out"
echo "screenshot: $out"
