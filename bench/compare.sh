#!/usr/bin/env bash
# Side by side, in one run on one machine: one take-and-release cycle of a
# pidfile with this library, a raw floor, BSD pidfile(3), Python pid 3.0.4
# and flock(1), on tmpfs and on the disk under the temporary directory; then
# what the #[pidfile] attribute adds to a program's start-up, and how soon a
# waiter holds a pidfile its holder releases.
#
#   bench/compare.sh            # CYCLES=20000 ROUNDS=5 SPAWNS=2000 by default
#
# Each figure is the median of ROUNDS rounds; the tools take turns within a
# round so that a busy moment of the machine does not fall on one alone.
# System calls per cycle come from `strace -c -f`: a run of STRACE_CYCLES
# cycles minus a run of none, divided by STRACE_CYCLES.
set -euo pipefail
cd "$(dirname "$0")/.."

CYCLES=${CYCLES:-20000}
ROUNDS=${ROUNDS:-5}
SPAWNS=${SPAWNS:-2000}
STRACE_CYCLES=${STRACE_CYCLES:-2000}
out=target/bench
mkdir -p "$out"

# Peers and tools: the same installer as the interoperability tests, plus strace.
tests/peers/install.sh >&2
if ! command -v strace >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >&2 && apt-get install -y -qq strace >&2
    else
        echo "compare.sh: strace not found: apt-get install strace" >&2
        exit 1
    fi
fi
python=${PIDFILE_PYTHON:-target/peers/venv/bin/python}

cargo build -q --release -p pid-bench
cc -O2 -o "$out/cycles-c" bench/c/cycles.c -lbsd
cc -O2 -o "$out/spawn" bench/c/spawn.c
ours=target/release/cycles

# The first writable tmpfs; without one, the "tmpfs" columns are the disk again.
tmpfs_root=${TMPDIR:-/tmp}
for candidate in "${XDG_RUNTIME_DIR:-}" /dev/shm; do
    if [ -n "$candidate" ] && [ -d "$candidate" ] && [ -w "$candidate" ]; then
        tmpfs_root=$candidate
        break
    fi
done
tmpfs=$(mktemp -d "$tmpfs_root/pid-bench.XXXXXX")
disk=$(mktemp -d "${TMPDIR:-/tmp}/pid-bench.XXXXXX")
trap 'rm -rf "$tmpfs" "$disk"' EXIT
fs_type() { findmnt -no FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1"; }

# tool label -> command prefix; the cycle count and nothing else follows.
labels=(floor ours ours-stale bsd python flock)
declare -A title=(
    [floor]="raw floor (open + flock + write + unlink + close)"
    [ours]="pid-runtime"
    [ours-stale]="pid-runtime, taking over a stale longer pid"
    [bsd]="BSD pidfile(3), libbsd"
    [python]="Python pid 3.0.4"
    [flock]="flock(1), one process per cycle"
)
command_for() { # label dir count
    local file=$2/bench.pid
    case $1 in
    floor) echo "$out/cycles-c floor $file $3" ;;
    ours) echo "$ours $file $3" ;;
    ours-stale) echo "$ours $file $3 --stale" ;;
    bsd) echo "$out/cycles-c bsd $file $3" ;;
    python) echo "$python bench/py_cycles.py $file $3" ;;
    flock) echo "$out/spawn $3 flock -n $file true" ;;
    esac
}
count_for() { # flock(1) starts a process per cycle: fewer of them
    if [ "$1" = flock ]; then echo "$SPAWNS"; else echo "$CYCLES"; fi
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A samples
for fs in tmpfs disk; do
    dir=${!fs}
    for round in $(seq "$ROUNDS"); do
        for label in "${labels[@]}"; do
            ns=$($(command_for "$label" "$dir" "$(count_for "$label")"))
            samples[$fs.$label]+="$ns "
        done
        echo "round $round/$ROUNDS on $fs done" >&2
    done
done

syscalls() { # label: calls per cycle on tmpfs
    local trace=$out/strace.txt n
    total() {
        strace -f -c -o "$trace" $(command_for "$1" "$tmpfs" "$2") >/dev/null
        awk '$NF == "total" { print $4 }' "$trace"
    }
    n=$STRACE_CYCLES
    [ "$1" = flock ] && n=$((STRACE_CYCLES / 10))
    local with without
    with=$(total "$1" "$n")
    without=$(total "$1" 0)
    awk -v a="$with" -v b="$without" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }'
}

declare -A median_ns calls
for fs in tmpfs disk; do
    for label in "${labels[@]}"; do
        median_ns[$fs.$label]=$(tr ' ' '\n' <<<"${samples[$fs.$label]}" | grep . | median)
    done
done
for label in "${labels[@]}"; do
    calls[$label]=$(syscalls "$label")
done

us() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr);" \
    "tmpfs = $tmpfs_root ($(fs_type "$tmpfs")), disk = ${TMPDIR:-/tmp} ($(fs_type "$disk"))."
echo "Cycles: $CYCLES per run ($SPAWNS for flock(1)), median of $ROUNDS rounds."
echo
echo "| tool | tmpfs µs/cycle | × floor | disk µs/cycle | × floor | system calls/cycle |"
echo "|---|---:|---:|---:|---:|---:|"
for label in "${labels[@]}"; do
    t=${median_ns[tmpfs.$label]}
    d=${median_ns[disk.$label]}
    echo "| ${title[$label]} | $(us "$t") | $(ratio "$t" "${median_ns[tmpfs.floor]}")" \
        "| $(us "$d") | $(ratio "$d" "${median_ns[disk.floor]}") | ${calls[$label]} |"
done

# Start-up: whole processes, spawn to reap, the pidfile on tmpfs. Each pair
# runs in turn, one run of each at a time, so noise falls on both alike.
export STARTUP_DIR=$tmpfs
declare -A startup_samples
for round in $(seq "$ROUNDS"); do
    read -r plain guarded < <("$out/spawn" "$SPAWNS" target/release/startup-plain \
        -- target/release/startup-attribute)
    startup_samples[rust-plain]+="$plain "
    startup_samples[rust-attribute]+="$guarded "
    read -r plain guarded < <("$out/spawn" "$SPAWNS" "$out/cycles-c" bsd "$tmpfs/c.pid" 0 \
        -- "$out/cycles-c" bsd "$tmpfs/c.pid" 1)
    startup_samples[c-plain]+="$plain "
    startup_samples[c-pidfile]+="$guarded "
done
declare -A startup_title=(
    [rust-plain]="Rust, empty \`fn main\`"
    [rust-attribute]="Rust, \`#[pidfile] fn main\`"
    [c-plain]="C, empty main"
    [c-pidfile]="C, pidfile_open + write + remove"
)
declare -A startup_ns
for label in rust-plain rust-attribute c-plain c-pidfile; do
    startup_ns[$label]=$(tr ' ' '\n' <<<"${startup_samples[$label]}" | grep . | median)
done
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", (a - b) / 1000 }'; }

echo
echo "Start-up: $SPAWNS runs of each per round, in turn, spawn to reap, median of $ROUNDS rounds."
echo
echo "| program | µs/run | added by the pidfile, µs | × the empty program |"
echo "|---|---:|---:|---:|"
for pair in "rust-plain rust-attribute" "c-plain c-pidfile"; do
    read -r plain guarded <<<"$pair"
    echo "| ${startup_title[$plain]} | $(us "${startup_ns[$plain]}") | | |"
    echo "| ${startup_title[$guarded]} | $(us "${startup_ns[$guarded]}")" \
        "| $(added "${startup_ns[$guarded]}" "${startup_ns[$plain]}")" \
        "| $(ratio "${startup_ns[$guarded]}" "${startup_ns[$plain]}") |"
done

# Handoff: a holder releases, a waiter holds; acquire_timeout beside polling
# and a blocking flock(2), in one run (bench/src/bin/handoff.rs).
echo
target/release/handoff --handoffs "${HANDOFFS:-1000}" --dir "$tmpfs"
