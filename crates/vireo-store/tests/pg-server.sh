#!/usr/bin/env bash
# Throwaway PostgreSQL server for the vireo-store test suite (and CI).
#
#   tests/pg-server.sh start      # initdb + start on a free loopback port in a
#                                 # new temp dir; prints on stdout:
#                                 #   VIREO_TEST_POSTGRES_URL=postgres://...
#                                 #   VIREO_PG_DIR=/tmp/vireo-pg.XXXX
#   tests/pg-server.sh stop DIR   # stop that server and delete DIR
#
# Typical use:
#   set -a; eval "$(crates/vireo-store/tests/pg-server.sh start)"; set +a
#   cargo test -p vireo-store
#   crates/vireo-store/tests/pg-server.sh stop "$VIREO_PG_DIR"
#
# Only stdout carries the two lines above; progress goes to stderr. The server
# listens on 127.0.0.1 (and a unix socket inside DIR) with trust auth: it is
# for tests on this machine only. Installs Debian's postgresql if missing.
set -euo pipefail

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

as_pg() {
    # initdb and postgres refuse to run as root.
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
    local bin dir port
    bin=$(pg_bindir)
    if [[ -z "$bin" ]]; then
        echo "pg-server: installing postgresql with apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        bin=$(pg_bindir)
        [[ -n "$bin" ]] || { echo "pg-server: postgresql binaries not found" >&2; exit 1; }
    fi
    dir=$(mktemp -d /tmp/vireo-pg.XXXXXX)
    chmod 755 "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }

    # Pick a free port; retry if another process grabs it between check and start.
    local tries=0
    while :; do
        port=$((20000 + RANDOM % 20000))
        if port_in_use "$port"; then continue; fi
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
            start >&2; then
            break
        fi
        tries=$((tries + 1))
        if [[ $tries -ge 5 ]]; then
            cat "$dir/server.log" >&2 || true
            exit 1
        fi
    done
    echo "VIREO_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "VIREO_PG_DIR=$dir"
}

stop() {
    local dir=${1:-} bin
    [[ -n "$dir" && -f "$dir/data/PG_VERSION" ]] || {
        echo "pg-server: $dir is not a directory made by 'start'" >&2
        exit 1
    }
    bin=$(pg_bindir)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
