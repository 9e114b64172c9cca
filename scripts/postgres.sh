#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests (and a developer's try-out of
# `eenplan-server serve --database`), from Debian's packages.
#
#   scripts/postgres.sh install          installs Debian's `postgresql` when its server
#                                        binaries are missing (root, or sudo)
#   scripts/postgres.sh start DIR PORT [OWNER_PID]
#                                        initdb into DIR (a new directory) and start it on
#                                        127.0.0.1:PORT and a Unix socket in DIR (mode 700);
#                                        prints the superuser's URL
#                                        (postgres://eenplan@127.0.0.1:PORT/postgres). With
#                                        OWNER_PID, the cluster stops and DIR goes when that
#                                        process ends (a test process that cannot clean up).
#   scripts/postgres.sh stop DIR         stops it (DIR stays)
#   scripts/postgres.sh createdb URL NAME
#                                        creates database NAME (letters, digits, _) on the
#                                        cluster of URL (its .../postgres); prints its URL
#
# With EENPLAN_PG_STATEMENTS=FILE in the environment, start loads pg_stat_statements (with
# planning times), and load_bench appends each measured phase's statements to FILE.
#
# Loopback and the socket in DIR only, trust authentication on both (nothing off this host can
# connect, and only DIR's owner or root reaches the socket), fsync on (the default; the tests
# check durability claims). As root, the cluster runs as the `postgres` user the package
# creates: PostgreSQL refuses to run as root.
set -euo pipefail

bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
    done
    return 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "postgres.sh: need root to run: $*" >&2
        return 1
    fi
}

# Runs a server binary as the cluster's owner: the postgres user when we are root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
    bindir >/dev/null && return 0
    echo "postgres.sh: apt-get install postgresql" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
    bindir >/dev/null || { echo "postgres.sh: no initdb after installing postgresql" >&2; exit 1; }
}

start() {
    local dir="$1" port="$2" owner="${3:-}" bin
    bin="$(bindir)" || { echo "postgres.sh: PostgreSQL is not installed (scripts/postgres.sh install)" >&2; exit 1; }
    [[ -e "$dir" ]] && { echo "postgres.sh: $dir exists; start makes a new cluster" >&2; exit 1; }
    if [[ $(id -u) -eq 0 ]]; then
        command install -d -o postgres -g postgres -m 700 "$dir"
    else
        command install -d -m 700 "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir" -U eenplan -E UTF8 --no-locale --auth-local=trust --auth-host=trust \
        >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; exit 1; }
    rm -f "$dir.initdb.log"
    as_owner sh -c "cat >>'$dir/postgresql.conf'" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 300
CONF
    if [[ -n "${EENPLAN_PG_STATEMENTS:-}" ]]; then
        # A developer's profile (load_bench writes it to that file): every statement's calls,
        # planning and execution time.
        as_owner sh -c "cat >>'$dir/postgresql.conf'" <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_planning = on
CONF
    fi
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    if [[ -n "$owner" ]]; then
        # Polls once a second: nothing waits on it, it only tidies up after the owner.
        nohup bash -c "while kill -0 $owner 2>/dev/null; do sleep 1; done
            $(declare -f as_owner); as_owner '$bin/pg_ctl' -D '$dir' -m fast -w stop; rm -rf '$dir'" \
            >/dev/null 2>&1 &
    fi
    echo "postgres://eenplan@127.0.0.1:$port/postgres"
}

stop() {
    local dir="$1" bin
    bin="$(bindir)" || exit 1
    as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
}

createdb() {
    local url="$1" name="$2" bin
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "postgres.sh: bad database name $name" >&2; exit 2; }
    bin="$(bindir)" || exit 1
    "$bin/psql" "$url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $name" >/dev/null
    echo "${url%/*}/$name"
}

case "${1:-}" in
    install) install ;;
    start) [[ $# -ge 3 ]] || { echo "usage: postgres.sh start DIR PORT [OWNER_PID]" >&2; exit 2; }; start "$2" "$3" "${4:-}" ;;
    createdb) [[ $# -eq 3 ]] || { echo "usage: postgres.sh createdb URL NAME" >&2; exit 2; }; createdb "$2" "$3" ;;
    stop) [[ $# -eq 2 ]] || { echo "usage: postgres.sh stop DIR" >&2; exit 2; }; stop "$2" ;;
    *) echo "usage: postgres.sh install | start DIR PORT [OWNER_PID] | stop DIR | createdb URL NAME" >&2; exit 2 ;;
esac
