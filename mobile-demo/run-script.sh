#!/usr/bin/env bash
# Plays the mobile demo's home visit headless against a real eenplan-server:
#
#   mobile-demo/run-script.sh                      the headless home visit, then a revocation
#   mobile-demo/run-script.sh --screenshot FILE    the same with the phones shown and pictured
#                                                  (needs a display: see screenshot.sh)
#   mobile-demo/run-script.sh --window             the home visit, then both phones as windows
#                                                  on the still running server until you close them
#
# It starts eenplan-server on a free loopback port in a temporary directory, sets up the network
# with eenplan-admin (root; a wijkteam with two workers, one of them the plan's regisseur; the
# Zorg- en Veiligheidshuis with a procesregisseur and a PGA-expert; one enrolment code each),
# lets each phone claim its code (`--enrol`), approves all four, runs the app's `--script`, and
# finally revokes the worker's phone and checks that it wipes itself (`--after-revocation`).
# Everything is removed on exit.
#
# Without the variables below it builds what it needs: scripts/bindings.sh (cargo build
# --workspace, Kotlin bindings into target/bindings/kotlin) and kotlinc (installed by
# scripts/install-test-deps.sh) into target/mobile-demo/. The binding tests set them instead:
#   EENPLAN_SERVER_BIN, EENPLAN_ADMIN_BIN   the binaries
#   EENPLAN_FFI_LIB_DIR             the directory holding libeenplan_ffi.so
#   EENPLAN_KOTLIN_BINDINGS         the generated Kotlin (the directory holding nl/eenplan/)
#   EENPLAN_DEMO_BUILD              where the app's jar goes
#   EENPLAN_BINDINGS_JAR            optional: the generated bindings already compiled (the
#                                   binding tests share one jar between the Kotlin story and this)
set -euo pipefail
demo="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$demo/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

mode=script
screenshot=""
case "${1:-}" in
    "") ;;
    --window) mode=window ;;
    --screenshot) screenshot="$(realpath -m "${2:?--screenshot needs a file}")" ;;
    *) echo "usage: $0 [--window | --screenshot FILE]" >&2; exit 2 ;;
esac

if [[ -z "${EENPLAN_SERVER_BIN:-}" || -z "${EENPLAN_ADMIN_BIN:-}" || -z "${EENPLAN_FFI_LIB_DIR:-}" || -z "${EENPLAN_KOTLIN_BINDINGS:-}" ]]; then
    echo "== building the workspace and generating the bindings (scripts/bindings.sh)"
    "$root/scripts/bindings.sh" >/dev/null
    EENPLAN_SERVER_BIN="$target/debug/eenplan-server"
    EENPLAN_ADMIN_BIN="$target/debug/eenplan-admin"
    EENPLAN_FFI_LIB_DIR="$target/debug"
    EENPLAN_KOTLIN_BINDINGS="$target/bindings/kotlin"
fi
build="${EENPLAN_DEMO_BUILD:-$target/mobile-demo}"

"$root/scripts/install-test-deps.sh"
kotlin="$root/.tools/node_modules/kotlin-compiler"
jna=/usr/share/java/jna.jar
classpath="$jna:$kotlin/lib/kotlinx-coroutines-core-jvm.jar"
bindings_jar="$build/eenplan-bindings.jar"
jar="$build/mobile-demo.jar"

# Two jars, each rebuilt only when the content of its sources changed: the generated bindings
# (slow to compile; scripts/bindings.sh rewrites them on every run, so mtimes do not help) and
# the app.
mkdir -p "$build"
digest() { find "$@" -name '*.kt' -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1; }
compile() { # jar stamp-digest kotlinc-arguments...
    local out="$1" sum="$2"
    shift 2
    if [[ -f "$out" && "$(cat "$out.sha256" 2>/dev/null)" == "$sum" ]]; then return; fi
    "$kotlin/bin/kotlinc" -nowarn "$@" -d "$build/partial.jar"
    mv "$build/partial.jar" "$out"
    echo "$sum" >"$out.sha256"
}
bindings_sum="$(digest "$EENPLAN_KOTLIN_BINDINGS")"
app_sum="$(digest "$demo/src")-$bindings_sum"
echo "== kotlinc: the generated bindings (about a minute; kept while they do not change) and mobile-demo/src"
if [[ -n "${EENPLAN_BINDINGS_JAR:-}" ]]; then
    bindings_jar="$EENPLAN_BINDINGS_JAR"
else
    compile "$bindings_jar" "$bindings_sum" -cp "$classpath" "$EENPLAN_KOTLIN_BINDINGS"
fi
compile "$jar" "$app_sum" -cp "$bindings_jar:$classpath" "$demo/src" -include-runtime
classpath="$jar:$bindings_jar:$classpath"
app() {
    java -Djna.library.path="$EENPLAN_FFI_LIB_DIR" -cp "$classpath" nl.eenplan.demo.MainKt "$@"
}

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== eenplan-server on a free port (data in $work/server)"
mkfifo "$work/server.out"
RUST_LOG="${RUST_LOG:-warn}" "$EENPLAN_SERVER_BIN" serve --data "$work/server" --listen 127.0.0.1:0 \
    >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
# The server's own "listening on ADDR" line is the signal that it accepts connections.
exec 3<"$work/server.out"
if ! read -r line <&3; then
    echo "the server stopped before listening:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
cat <&3 >/dev/null &
exec 3<&-
url="http://${line#listening on }"
echo "   $url"

export EENPLAN_ADMIN_PASSPHRASE="${EENPLAN_ADMIN_PASSPHRASE:-mobile demo: blauwe tram naar huis}"
admin() { EENPLAN_SERVER="$url" "$EENPLAN_ADMIN_BIN" --data "$work/admin" "$@"; }
org="Wijkteam Noord"
zvh="Zorg- en Veiligheidshuis Zaanstreek-Waterland"
echo "== the administrator sets up the network: $org (Rita, the plan's regisseur, and Wim), $zvh (Zoë, procesregisseur; Piet, PGA-expert)"
# A fresh server is claimed with the one-time secret it wrote to its data directory.
EENPLAN_INIT_SECRET=$(cat "$work/server/init-secret") admin init --server "$url" --name "Beheer Regio Midden" >/dev/null
admin org add "$org" --lease-hours 72 >/dev/null
admin org add "$zvh" --lease-hours 72 >/dev/null
admin user add --org "$org" --name Rita --role wijkteam >/dev/null
admin user add --org "$org" --name Wim --role wijkteam >/dev/null
admin user add --org "$zvh" --name Zoë --role zvh_procesregisseur >/dev/null
admin user add --org "$zvh" --name Piet --role pga_expert >/dev/null

rita="$work/phones/rita"
wim="$work/phones/wim"
zoe="$work/phones/zoe"
piet="$work/phones/piet"
echo "== each phone claims its one-time enrolment code; the administrator approves"
# (A participant is named by an approved device's certificate: Zoë and Piet can be added at
# the escalation only once a device of theirs is approved.)
rita_code="$(admin device enrol --user Rita)"
wim_code="$(admin device enrol --user Wim)"
zoe_code="$(admin device enrol --user Zoë)"
piet_code="$(admin device enrol --user Piet)"
app --enrol --phone "Rita=$rita" --server "$url" --code "$rita_code"
wim_out="$(app --enrol --phone "Wim=$wim" --server "$url" --code "$wim_code")"
echo "$wim_out"
wim_device="$(sed -n 's/^device-id //p' <<<"$wim_out")"
app --enrol --phone "Zoe=$zoe" --server "$url" --code "$zoe_code"
app --enrol --phone "Piet=$piet" --server "$url" --code "$piet_code"
for code in "$rita_code" "$wim_code" "$zoe_code" "$piet_code"; do
    admin device approve --code "$code" >/dev/null
done

# Rita first: the script's first phone holds regie of the plan it draws up; the third is
# offered regie at the escalation, the fourth joins it.
phones=(--phone "Rita=$rita" --phone "Wim=$wim" --phone "Zoe=$zoe" --phone "Piet=$piet")
if [[ -n "$screenshot" ]]; then
    app --script "${phones[@]}" --screenshot "$screenshot"
else
    app --script "${phones[@]}"
fi

if [[ "$mode" == window ]]; then
    echo "== both phones as windows on $url; close them to stop the server"
    app --window "${phones[@]}"
    exit 0
fi

echo "== the administrator revokes Wim's phone (lost); at its next sync it wipes itself"
admin device revoke "$wim_device" --reason lost >/dev/null
app --after-revocation --phone "Wim=$wim"
echo "== mobile demo: passed"
