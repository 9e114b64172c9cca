#!/usr/bin/env bash
# nginx from Debian's packages, as the load balancer in front of several `eenplan-server`
# processes in the tests (tests/src/balancer.rs writes its configuration and runs it).
#
#   scripts/nginx.sh install     installs Debian's `nginx` when /usr/sbin/nginx is missing
#                                (root, or sudo); the package's own service is never started
#   scripts/nginx.sh path        prints the binary's path
set -euo pipefail

binary=/usr/sbin/nginx

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "nginx.sh: need root to run: $*" >&2
        return 1
    fi
}

install() {
    [[ -x "$binary" ]] && return 0
    echo "nginx.sh: apt-get install nginx" >&2
    as_root apt-get update -qq
    # RUNLEVEL=1 keeps the package's scripts from starting the system's nginx on port 80: the
    # tests run their own, on loopback ports of their own.
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends nginx >&2
    [[ -x "$binary" ]] || { echo "nginx.sh: no $binary after installing nginx" >&2; exit 1; }
}

case "${1:-}" in
    install) install ;;
    path) [[ -x "$binary" ]] || { echo "nginx.sh: nginx is not installed (scripts/nginx.sh install)" >&2; exit 1; }
        echo "$binary" ;;
    *) echo "usage: nginx.sh install | path" >&2; exit 2 ;;
esac
