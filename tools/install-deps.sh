#!/bin/sh
# Install what BlazeNeo-C needs on Debian (12 "bookworm" or later).
#   tools/install-deps.sh          build + run: compiler, CMake, OpenBLAS, libjpeg-turbo, libpng
#   tools/install-deps.sh --test   also the test tools: Check, valgrind, chromium (the eval
#                                  report is rendered in it), python3-torch, numpy and PIL
#                                  for the PyTorch parity tests, clang with libFuzzer for
#                                  the fuzz targets (tests/fuzz), and GStreamer's
#                                  development files and tools for the element (gst/)
#   tools/install-deps.sh --list   print the packages (of the other flags) and exit
# As root it installs with apt-get; otherwise through sudo when there is one. A user who is
# neither gets the command to run (exit 1) - unless everything is installed already (exit 0).
set -eu
PKGS="build-essential cmake pkg-config libopenblas-dev libjpeg62-turbo-dev libpng-dev"
TEST_PKGS="check valgrind chromium python3 python3-torch python3-numpy python3-pil clang libclang-rt-dev"
TEST_PKGS="$TEST_PKGS libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base"
list=0
for arg in "$@"; do
    case "$arg" in
        --test) PKGS="$PKGS $TEST_PKGS" ;;
        --list) list=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-deps.sh: unknown option '$arg' (--test, --list, --help)" >&2; exit 2 ;;
    esac
done
if [ "$list" = 1 ]; then echo "$PKGS"; exit 0; fi

# what is not installed yet (dpkg-query says "install ok installed" for each package that is)
missing=""
for p in $PKGS; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps.sh: everything is installed: $PKGS"
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps.sh: not root and no sudo: as root, run" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps.sh: installed:$missing"
