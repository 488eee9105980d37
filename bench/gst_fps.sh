#!/bin/sh
# bench/gst_fps.sh - frames per second of the GStreamer element `blazeneo` against
# `blazeneo stream` on the same clip, the same model and the same threads.
#
#   bench/gst_fps.sh [-b BUILD_DIR] [-m MODEL] [-n FRAMES] [-W WIDTH] [-H HEIGHT] [-t THREADS]
#                    [-s NETWORK_SIZE] [-p fp32|int8] [-c CALIB_CACHE] [-o overlay|mask|classes]
#                    [-r REPEATS] [-- MORE_ELEMENT_PROPERTIES...]
#
# Defaults: build/ (any build with gst/libgstblazeneo.so), the shipped model, 30 frames of
# 640x480, all threads, the model's network size and precision, overlay out, best of 3.
# -s, -p and -c go to both sides (stream -s/-p/--calib, the element's size/precision/calib).
#
# The clip: the sample frames (samples/*.jpeg) decoded and scaled to WIDTHxHEIGHT RGB by
# GStreamer (jpegdec, from gst-plugins-good; without it videotestsrc frames), repeated to
# FRAMES frames. Both sides read it from a file and throw their output away:
#   stream  blazeneo stream -W W -H H --out OUTPUT < clip > /dev/null
#   gst     gst-launch-1.0 filesrc ! rawvideoparse ! blazeneo output=OUTPUT ! fakesink
# Each is timed as a whole process, once with the whole clip and once with its first frame
# alone; the difference is the time of FRAMES-1 frames with the start-up (process, model
# loading, context creation) taken out:  FPS = (FRAMES - 1) / (t(FRAMES) - t(1)). The CPU time
# per frame (user + system, the same difference) is printed too: on a busy machine it moves
# less than the wall time.
# Best of REPEATS runs, the two sides taking turns. The load average is printed before and
# after: other busy processes on the cores slow both sides down.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build"
model="$here/models/blazeneo-dha-neopolyp-small-f16.bzn"
frames=30 width=640 height=480 threads=0 output=overlay repeats=3 size="" precision="" calib=""
while getopts b:m:n:W:H:t:s:p:c:o:r:h opt; do
    case "$opt" in
    b) build=$(cd "$OPTARG" && pwd) ;;
    m) model="$OPTARG" ;;
    n) frames="$OPTARG" ;;
    W) width="$OPTARG" ;;
    H) height="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    s) size="$OPTARG" ;;
    p) precision="$OPTARG" ;;
    c) calib=$(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG") ;;
    o) output="$OPTARG" ;;
    r) repeats="$OPTARG" ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
extra="$*" # more element properties, e.g. outline=0 legend=none
# the options both sides get, in each one's words
cli_opts="" gst_opts=""
[ -z "$size" ] || { cli_opts="$cli_opts -s $size"; gst_opts="$gst_opts size=$size"; }
[ -z "$precision" ] || { cli_opts="$cli_opts -p $precision"; gst_opts="$gst_opts precision=$precision"; }
[ -z "$calib" ] || { cli_opts="$cli_opts --calib $calib"; gst_opts="$gst_opts calib=$calib"; }

cli="$build/blazeneo"
[ -x "$cli" ] || { echo "gst_fps.sh: no $cli (build first, or -b BUILD_DIR)" >&2; exit 1; }
[ -f "$build/gst/libgstblazeneo.so" ] || { echo "gst_fps.sh: no $build/gst/libgstblazeneo.so (GStreamer dev files missing at configure time?)" >&2; exit 1; }
command -v gst-launch-1.0 >/dev/null || { echo "gst_fps.sh: gst-launch-1.0 not found (gstreamer1.0-tools)" >&2; exit 1; }
[ "$frames" -ge 2 ] || { echo "gst_fps.sh: -n needs at least 2 frames" >&2; exit 2; }
# packed RGB24 rows are what both sides read: a width whose rows GStreamer does not pad
[ $((width * 3 % 4)) -eq 0 ] || { echo "gst_fps.sh: -W must be a multiple of 4 (unpadded RGB rows)" >&2; exit 2; }
case "$output" in overlay|mask|classes) ;; *) echo "gst_fps.sh: -o overlay, mask or classes" >&2; exit 2 ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gst_fps.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
export GST_PLUGIN_PATH="$build/gst" GST_REGISTRY="$tmp/registry.bin"

# ---- the clip ----
for f in "$here"/samples/*.jpeg; do
    if ! gst-launch-1.0 -q filesrc location="$f" ! jpegdec ! videoconvert ! videoscale ! \
        video/x-raw,format=RGB,width="$width",height="$height" ! filesink location="$tmp/one.raw" 2>/dev/null; then
        echo "gst_fps.sh: jpegdec missing: videotestsrc frames instead of the samples" >&2
        gst-launch-1.0 -q videotestsrc num-buffers=4 pattern=smpte ! \
            video/x-raw,format=RGB,width="$width",height="$height" ! filesink location="$tmp/samples.raw"
        break
    fi
    cat "$tmp/one.raw" >> "$tmp/samples.raw"
done
frame_bytes=$((width * height * 3))
n_samples=$(($(wc -c < "$tmp/samples.raw") / frame_bytes))
i=0
: > "$tmp/clip.raw"
while [ "$i" -lt "$frames" ]; do
    dd if="$tmp/samples.raw" bs="$frame_bytes" skip=$((i % n_samples)) count=1 status=none >> "$tmp/clip.raw"
    i=$((i + 1))
done
head -c "$frame_bytes" "$tmp/clip.raw" > "$tmp/first.raw"

now() { date +%s.%N; }
# CPU seconds (user + system) of every child process so far, from the second line of `times`
# written to file $1 (`times` must run in this shell: in a $(...) subshell it would count that
# subshell's children alone)
child_cpu() {
    awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); n += p[1] * 60 + p[2] } printf "%.4f", n }' "$1"
}
# run a command; $took: the seconds it took, $cpu: the CPU seconds it used (a failure ends the
# script, with its log)
seconds() {
    times > "$tmp/times0"
    t0=$(now)
    "$@" || { echo "gst_fps.sh: failed: $*" >&2; cat "$tmp/log" >&2; exit 1; }
    t1=$(now)
    times > "$tmp/times1"
    took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    cpu=$(awk -v a="$(child_cpu "$tmp/times0")" -v b="$(child_cpu "$tmp/times1")" 'BEGIN { printf "%.4f", b - a }')
}
# the smaller of two times ("" counts as none)
least() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 < a + 0) a = b; printf "%.4f", a }'; }
run_stream() { # $1: input file
    # shellcheck disable=SC2086 # $cli_opts: several options
    "$cli" stream -m "$model" -W "$width" -H "$height" -t "$threads" --out "$output" $cli_opts \
        < "$1" > /dev/null 2> "$tmp/log"
}
run_gst() { # $1: input file
    # shellcheck disable=SC2086 # $gst_opts, $extra: several properties
    gst-launch-1.0 -q filesrc location="$1" ! \
        rawvideoparse width="$width" height="$height" format=rgb framerate=30/1 ! \
        blazeneo model="$model" threads="$threads" output="$output" $gst_opts $extra ! fakesink > "$tmp/log" 2>&1
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
echo "load:   $(uptime | sed 's/.*load average/load average/')"
echo "clip:   $frames frames of ${width}x${height} RGB ($n_samples distinct), --out $output, threads $threads${cli_opts:+,$cli_opts}${extra:+, element: $extra}"
# the four runs in turn, $repeats times: a change in the machine's load hits both sides alike
s_all="" s_one="" g_all="" g_one="" cs_all="" cs_one="" cg_all="" cg_one=""
r=0
while [ "$r" -lt "$repeats" ]; do
    seconds run_stream "$tmp/clip.raw" && s_all=$(least "$s_all" "$took") && cs_all=$(least "$cs_all" "$cpu")
    seconds run_stream "$tmp/first.raw" && s_one=$(least "$s_one" "$took") && cs_one=$(least "$cs_one" "$cpu")
    seconds run_gst "$tmp/clip.raw" && g_all=$(least "$g_all" "$took") && cg_all=$(least "$cg_all" "$cpu")
    seconds run_gst "$tmp/first.raw" && g_one=$(least "$g_one" "$took") && cg_one=$(least "$cg_one" "$cpu")
    r=$((r + 1))
done
awk -v n="$frames" -v sa="$s_all" -v s1="$s_one" -v ga="$g_all" -v g1="$g_one" \
    -v csa="$cs_all" -v cs1="$cs_one" -v cga="$cg_all" -v cg1="$cg_one" 'BEGIN {
    fs = (n - 1) / (sa - s1); fg = (n - 1) / (ga - g1)
    ps = 1000 * (csa - cs1) / (n - 1); pg = 1000 * (cga - cg1) / (n - 1)
    printf "stream:  %6.2f FPS  (%d frames %.2f s, 1 frame %.2f s: start-up)  CPU %.0f ms/frame\n", fs, n, sa, s1, ps
    printf "gst:     %6.2f FPS  (%d frames %.2f s, 1 frame %.2f s: start-up)  CPU %.0f ms/frame\n", fg, n, ga, g1, pg
    printf "ratio:   %6.3f  (gst / stream FPS)   CPU per frame %.3f (gst / stream)\n", fg / fs, pg / ps
}'
echo "load:   $(uptime | sed 's/.*load average/load average/') (after)"
