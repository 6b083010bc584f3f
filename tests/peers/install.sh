#!/usr/bin/env bash
# Installs the peers that tests/peers.rs runs against: util-linux flock(1),
# a C compiler with libbsd for BSD pidfile(3), and Python pid 3.0.4 in a
# virtual environment at target/peers/venv, where the tests look for it;
# and for tests/cluster.rs, etcd and etcdctl (the tests start their own
# servers) with libfaketime, and protoc with its well-known types, which
# etcd-client needs; for the PostgreSQL tests, the server (initdb and
# pg_ctl, run by the tests as an unprivileged user) and PgBouncer.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/include/bsd/libutil.h ] || missing+=(libbsd-dev)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=target/peers/venv
if ! "$venv/bin/python" -c 'import pid' >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check pid==3.0.4
fi
echo "peers ready: $(command -v flock), libbsd, Python pid $("$venv/bin/python" -c 'import pid; print(pid.__version__)'), $(etcd --version | head -1)"
