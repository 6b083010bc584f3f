#!/usr/bin/env bash
# The cluster lock against `etcdctl lock`, side by side on one local etcd
# that this script starts and stops: an uncontended acquire + release, and
# the handoff from a holder's release to a queued waiter holding; how late
# after its deadline the attribute drops an async body; then the
# same on a local PostgreSQL server, against a bare pg_try_advisory_lock
# client.
#
#   bench/cluster.sh           # CYCLES=200 HANDOFFS=50 LOSSES=20 by default
#
# etcdctl is a process per lock, so its rows include a process start; the
# `etcdctl get` row is that floor, measured the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-200}
HANDOFFS=${HANDOFFS:-50}
LOSSES=${LOSSES:-20}
tests/peers/install.sh >&2
cargo build -q --release -p pid-bench --bin cluster --bin loss-latency

work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client=http://127.0.0.1:$(port) peer=http://127.0.0.1:$(port)
etcd --name bench --data-dir "$work/data" --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "bench=$peer" \
    --log-level error --logger zap >/dev/null 2>&1 &
etcd_pid=$!
stop_etcd() {
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap stop_etcd EXIT
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$client" "$@"; }
until ctl endpoint health >/dev/null 2>&1; do :; done

ns() { date +%s%N; }
# median and p99 of microsecond figures on standard input
stats() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.99+0.5)]; if (p=="") p=a[NR]; print m, p}'; }

ours_cycle=$(target/release/cluster "$client" cycles "$CYCLES")
etcdctl_cycle=$(for _ in $(seq "$CYCLES"); do t=$(ns); ctl lock bench-ctl true >/dev/null; echo $(( ($(ns) - t) / 1000 )); done | stats)
floor=$(for _ in $(seq "$CYCLES"); do t=$(ns); ctl get none >/dev/null; echo $(( ($(ns) - t) / 1000 )); done | stats)

ours_handoff=$(target/release/cluster "$client" handoff "$HANDOFFS")
fifo=$work/go
mkfifo "$fifo"
keys() { ctl get --prefix --keys-only bench-hand/ | grep -c . || true; }
etcdctl_handoff=$(for _ in $(seq "$HANDOFFS"); do
    ctl lock bench-hand -- sh -c "read line < $fifo" >/dev/null &
    holder=$!
    until [ "$(keys)" -ge 1 ]; do :; done
    ctl lock bench-hand -- date +%s%N >"$work/got" &
    waiter=$!
    until [ "$(keys)" -ge 2 ]; do :; done
    t=$(ns); echo go >"$fifo"
    wait "$holder" "$waiter"
    echo $(( ($(cat "$work/got") - t) / 1000 ))
done | stats)

# From an async body's deadline to its drop, the server stopped under it.
loss=$(target/release/loss-latency "$client" "$etcd_pid" "$LOSSES")

# The same on PostgreSQL: a server of this run's own, as nobody when root
# (initdb refuses root), with a bare pg_try_advisory_lock client as floor.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_server() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi; }
mkdir "$work/pg"
[ "$(id -u)" -ne 0 ] || { chmod a+x "$work"; chown nobody:nogroup "$work/pg"; }
as_server "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
pg_port=$(port)
as_server "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
    -c listen_addresses=127.0.0.1 -c fsync=off >/dev/null 2>&1 &
stop_all() {
    if [ -n "${pg_pid:-}" ]; then
        kill -INT "$pg_pid" 2>/dev/null || true
        while kill -0 "$pg_pid" 2>/dev/null; do sleep 0.05; done
    fi
    stop_etcd
}
trap stop_all EXIT
until psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; do :; done
# The server's own pid (the one above is the shell that started it).
pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
pg_url=postgres://postgres@127.0.0.1:$pg_port/postgres
# In turn, a cycle of ours and one of the bare client's.
read -r pg_cycle_median pg_cycle_p99 pg_floor_median pg_floor_p99 < <(target/release/cluster "$pg_url" pair "$CYCLES")
pg_cycle="$pg_cycle_median $pg_cycle_p99" pg_floor="$pg_floor_median $pg_floor_p99"
pg_floor_session=$(target/release/cluster "$pg_url" floor-session "$CYCLES")
pg_handoff=$(target/release/cluster "$pg_url" handoff "$HANDOFFS")

printf '%-40s %12s %12s\n' "" "median µs" "p99 µs"
row() { printf '%-40s %12s %12s\n' "$1" $2; }
row "acquire + release, pid-cluster" "$ours_cycle"
row "acquire + release, etcdctl lock true" "$etcdctl_cycle"
row "  etcdctl get (a process, one request)" "$floor"
row "handoff, pid-cluster" "$ours_handoff"
row "handoff, etcdctl lock" "$etcdctl_handoff"
row "deadline to async body dropped (max)" "$loss"
row "acquire + release, pid-cluster on PG" "$pg_cycle"
row "  bare client: connect, lock, unlock" "$pg_floor"
row "  bare client: lock, unlock" "$pg_floor_session"
row "handoff, pid-cluster on PG" "$pg_handoff"
