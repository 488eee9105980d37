#!/bin/sh
# Install what BlazeNeo-C needs on Debian (12 "bookworm" or later). Run as root (or via sudo).
#   tools/install-deps.sh          build + run: compiler, CMake, OpenBLAS, libjpeg-turbo, libpng
#   tools/install-deps.sh --test   also the test tools: Check, valgrind, chromium (the eval
#                                  report is rendered in it), python3-torch, numpy and PIL
#                                  for the PyTorch parity tests, and clang with libFuzzer
#                                  and OpenMP for the fuzz targets (tests/fuzz)
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libopenblas-dev libjpeg62-turbo-dev libpng-dev"
if [ "${1:-}" = "--test" ]; then
    PKGS="$PKGS check valgrind chromium python3 python3-torch python3-numpy python3-pil clang libclang-rt-dev libomp-dev"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
echo "installed: $PKGS"
