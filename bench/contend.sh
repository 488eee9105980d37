#!/bin/sh
# contend.sh - how the engine fares beside busy neighbours: `blazeneo bench` quiet, then with N
# busy processes (one shell loop each) on the same cores, in alternating rounds, and the
# slowdown of the median (contended / quiet) measured in the same invocation.
#
#   bench/contend.sh [-n BUSY] [-r ROUNDS] [-- BENCH ARGS...]
#     -n BUSY     busy processes (default: one per CPU)
#     -r ROUNDS   quiet/contended pairs (default 3)
#     BENCH ARGS  passed to `blazeneo bench` (default: -m the shipped model -n 10)
#   BLAZENEO=path/to/blazeneo selects the binary (default build/blazeneo).
#
# An endoscopy workstation runs capture and display beside the segmenter: a thread pool that
# spins while it waits loses its time slices to them and a frame can take many times longer.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BLAZENEO:-$here/build/blazeneo}
busy=$(nproc)
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        -n) busy=$2; shift 2 ;;
        -r) rounds=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "contend.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || set -- -m "$here/models/blazeneo-dha-neopolyp-small-f16.bzn" -n 10
[ -x "$bin" ] || { echo "contend.sh: no $bin (build first, or set BLAZENEO)" >&2; exit 1; }

pids=""
stop_busy() {
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null && wait 2>/dev/null
    pids=""
}
trap stop_busy EXIT INT TERM

# the median of the network-alone line of one bench run, in ms
median() {
    "$bin" bench "$@" | awk '/network alone/ {print $3; found=1} END {if (!found) exit 1}'
}

echo "binary $bin, $busy busy process(es), $rounds rounds; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
q_all=""
c_all=""
r=1
while [ "$r" -le "$rounds" ]; do
    q=$(median "$@")
    i=0
    while [ "$i" -lt "$busy" ]; do
        sh -c 'while :; do :; done' &
        pids="$pids $!"
        i=$((i + 1))
    done
    c=$(median "$@")
    stop_busy
    echo "round $r: quiet $q ms, contended $c ms, ratio $(echo "$c $q" | awk '{printf "%.2f", $1 / $2}')"
    q_all="$q_all $q"
    c_all="$c_all $c"
    r=$((r + 1))
done
med() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mq=$(med "$q_all")
mc=$(med "$c_all")
echo "median of rounds: quiet $mq ms, contended $mc ms, slowdown $(echo "$mc $mq" | awk '{printf "%.2f", $1 / $2}')x"
