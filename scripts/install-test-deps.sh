#!/usr/bin/env bash
# Installs what the tests need besides Rust and python3. Idempotent: when everything is
# present it only checks and exits, in well under a second.
#
#  bindings: the Kotlin compiler (npm `kotlin-compiler`, which also ships the
#            kotlinx-coroutines jar that suspend functions need) into .tools/ (git-ignored),
#            and JNA from Debian.
#  print:    Debian's chromium (renders the family's copy as a browser prints it: headless
#            print-to-PDF and screenshots) and poppler-utils (`pdftotext`, the text of a PDF).
#            27 Debian packages, about 400 MB installed; under a minute on a good mirror.
#  console:  Debian's chromium and chromium-driver (chromedriver, the WebDriver server the
#            administrator's console tests drive headless chromium through).
#  postgres: Debian's postgresql (the server binaries; scripts/postgres.sh starts a throw-away
#            cluster for the PostgreSQL conformance suite and `serve --database` tests).
#  balancer: Debian's nginx (the load balancer in front of two server instances on one
#            database; scripts/nginx.sh installs it without starting the system's service).
#
#   scripts/install-test-deps.sh [bindings|print|console|postgres|balancer] install what is missing (all by
#                                                           default)
#   scripts/install-test-deps.sh --paths            print KOTLINC=…, JNA_JAR=…, CHROMIUM=…,
#                                                   PDFTOTEXT=…, CHROMEDRIVER=… (for the tests)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kotlin_version="2.4.20"
tools="$root/.tools"
kotlinc="$tools/node_modules/kotlin-compiler/bin/kotlinc"
jna_jar="/usr/share/java/jna.jar"
chromium="/usr/bin/chromium"
pdftotext="/usr/bin/pdftotext"
chromedriver="/usr/bin/chromedriver"

if [[ "${1:-}" == "--paths" ]]; then
    echo "KOTLINC=$kotlinc"
    echo "JNA_JAR=$jna_jar"
    echo "CHROMIUM=$chromium"
    echo "PDFTOTEXT=$pdftotext"
    echo "CHROMEDRIVER=$chromedriver"
    exit 0
fi
what="${1:-all}"
case "$what" in
    all | bindings | print | console | postgres | balancer) ;;
    *) echo "install-test-deps: unknown group $what (bindings, print, console, postgres, balancer)" >&2; exit 2 ;;
esac
wants() { [[ "$what" == all || "$what" == "$1" ]]; }

# As root (CI, the project's machines) apt-get runs directly; elsewhere through sudo if present.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "install-test-deps: need root to run: $*" >&2
        return 1
    fi
}

if wants postgres; then
    "$root/scripts/postgres.sh" install
fi
if wants balancer; then
    "$root/scripts/nginx.sh" install
fi

missing_apt=()
if wants bindings; then
    command -v java >/dev/null || missing_apt+=(default-jdk-headless)
    command -v npm >/dev/null || missing_apt+=(npm)
    [[ -f "$jna_jar" ]] || missing_apt+=(libjna-java libjna-jni)
fi
if wants print; then
    [[ -x "$chromium" ]] || missing_apt+=(chromium)
    [[ -x "$pdftotext" ]] || missing_apt+=(poppler-utils)
fi
if wants console; then
    [[ -x "$chromium" ]] || missing_apt+=(chromium)
    [[ -x "$chromedriver" ]] || missing_apt+=(chromium-driver)
fi
if ((${#missing_apt[@]})); then
    echo "install-test-deps: apt-get install ${missing_apt[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >&2
fi

if wants print; then
    [[ -x "$chromium" ]] || { echo "install-test-deps: $chromium is missing after the install" >&2; exit 1; }
    [[ -x "$pdftotext" ]] || { echo "install-test-deps: $pdftotext is missing after the install" >&2; exit 1; }
fi
if wants console; then
    [[ -x "$chromium" ]] || { echo "install-test-deps: $chromium is missing after the install" >&2; exit 1; }
    [[ -x "$chromedriver" ]] || { echo "install-test-deps: $chromedriver is missing after the install" >&2; exit 1; }
fi
wants bindings || exit 0

installed_version() {
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tools/node_modules/kotlin-compiler/package.json" 2>/dev/null | head -1
}
if [[ ! -x "$kotlinc" || "$(installed_version)" != "$kotlin_version" ]]; then
    echo "install-test-deps: npm install kotlin-compiler@$kotlin_version into .tools/" >&2
    mkdir -p "$tools"
    # A package.json of its own keeps npm from walking up into (or writing to) the repository.
    [[ -f "$tools/package.json" ]] || echo '{ "name": "eenplan-tools", "private": true }' >"$tools/package.json"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error "kotlin-compiler@$kotlin_version" >&2)
fi
[[ -x "$kotlinc" ]] || { echo "install-test-deps: $kotlinc is missing after the install" >&2; exit 1; }
[[ -f "$jna_jar" ]] || { echo "install-test-deps: $jna_jar is missing after the install" >&2; exit 1; }
