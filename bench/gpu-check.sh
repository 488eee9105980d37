#!/usr/bin/env bash
# bench/gpu-check.sh - the one prepared run on a GPU machine (issue 10): everything silicon
# must confirm, in one go, well under 8 minutes, results in one file.
#
#   OUT=/some/dir bench/gpu-check.sh        (the device tool sets $OUT; default ./gpu-check-out)
#
# Steps (each logged to $OUT/<step>.log, its status and seconds to $OUT/results.md):
#   1. the machine: nvidia-smi, nvcc, PyTorch
#   2. build with -DBLAZENEO_CUDA=ON (sm_80/89/90 + PTX; ptxas -Werror: no spills, no local memory)
#   3. test_cuda on silicon: the emulator's cases (tests/cuda_ops.c) on the GPU
#   4. compute-sanitizer memcheck, racecheck, synccheck and initcheck on a small run per precision
#   5. the SASS: HMMA (FP16) and IMMA (INT8) instructions present in the convolution kernels
#   6. bench: FP32, FP16 and INT8 at batch 1 and 32, 352x352, network alone and end to end,
#      with a per-layer profile (ms, GFLOP/s) at batch 1
#   7. PyTorch on the same GPU in the same run (bench/gpu_pytorch.py: eager, CUDA graph,
#      torch.compile reduce-overhead; FP32 and FP16 channels-last)
#   8. Dice of FP16 and INT8 against FP32 on the shipped sample frames
# Only the repository travels to the GPU machine (../shared does not): the model is the
# shipped one, INT8 scales the committed calibration cache (16 frames of the calib set).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
R=$OUT/results.md
B=build-gpu
M=models/blazeneo-dha-neopolyp-small-f16.bzn
CAL=models/blazeneo-dha-neopolyp-small-entropy16.calib
T0=$(date +%s)
: >"$R"
say() { echo "$*" | tee -a "$R"; }
# step NAME TIMEOUT_S COMMAND...: run, log, record status and time
step() {
    local name=$1 limit=$2 t=$(date +%s)
    shift 2
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    say "- $name: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") in $(( $(date +%s) - t )) s"
    return $rc
}

say "# gpu-check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; \
  /usr/local/cuda/bin/nvcc --version | tail -2; python3 -c 'import torch; print("torch", torch.__version__)'; \
  nproc; } >"$OUT/machine.log" 2>&1
sed 's/^/    /' "$OUT/machine.log" >>"$R"

step configure 120 cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DBLAZENEO_CUDA=ON -DBLAZENEO_GSTREAMER=OFF \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc || { say "configure failed: see configure.log"; exit 1; }
step build 300 cmake --build $B -j"$(nproc)" --target blazeneo_cli || { say "build failed: see build.log"; exit 1; }
grep -E "registers|spill|lmem" "$OUT/build.log" | sort | uniq -c | sort -rn | head -20 >"$OUT/ptxas.txt"
# the tests need Check (libcheck): without it the CLI steps below still run
step build-tests 200 cmake --build $B -j"$(nproc)" --target test_cuda &&
    step test_cuda 240 env BZN_SOURCE_DIR="$PWD" CK_FORK=no $B/tests/test_cuda
tail -5 "$OUT/test_cuda.log" | sed 's/^/    /' >>"$R"

IMG=$(ls samples/*.jpeg | head -1)
for tool in memcheck racecheck synccheck initcheck; do
    for p in fp32 fp16 int8; do
        extra=""; [ $p = int8 ] && extra="--calib $CAL"
        step "sanitizer-$tool-$p" 60 /usr/local/cuda/bin/compute-sanitizer --tool $tool --error-exitcode 9 \
            $B/blazeneo segment -m $M -b cuda -p $p $extra -s 64 -o "$OUT/cs-$p" "$IMG"
    done
done

CUOBJDUMP=/usr/local/cuda/bin/cuobjdump
OBJ=$(find $B -name 'conv.cu.o' | head -1)
{ for arch in sm_80 sm_89 sm_90; do
    echo "$arch: HMMA $($CUOBJDUMP -sass -arch $arch "$OBJ" 2>/dev/null | grep -c HMMA)" \
         "IMMA $($CUOBJDUMP -sass -arch $arch "$OBJ" 2>/dev/null | grep -c IMMA)" \
         "FFMA $($CUOBJDUMP -sass -arch $arch "$OBJ" 2>/dev/null | grep -c FFMA)"; done; } >"$OUT/sass.txt" 2>&1
say "- SASS of conv.cu: $(tr '\n' ';' <"$OUT/sass.txt")"

for p in fp32 fp16 int8; do
    extra=""; [ $p = int8 ] && extra="--calib $CAL"
    for bs in 1 32; do
        n=200; [ $bs = 32 ] && n=50
        step "bench-$p-b$bs" 120 $B/blazeneo bench -m $M -b cuda -p $p $extra -B $bs -n $n --warmup 10 --json
        python3 - "$OUT/bench-$p-b$bs.log" <<'EOF' >>"$R" 2>/dev/null
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])
net, e2e = j.get("network", {}), j
print("    %s batch %s: network median %.3f ms, end to end median %.3f ms, %.0f images/s (network)" % (
    j.get("precision"), j.get("batch"), net.get("median_ms", -1), e2e.get("median_ms", -1),
    j.get("batch", 1) * 1000.0 / max(net.get("median_ms", 1e9), 1e-9)))
EOF
    done
    step "layers-$p" 120 $B/blazeneo bench -m $M -b cuda -p $p $extra -n 50 --layers
done

step pytorch 300 python3 bench/gpu_pytorch.py --size 352 --batch 1 32 -n 100 --json "$OUT/pytorch.json"
grep -E "batch|failed" "$OUT/pytorch.log" | sed 's/^/    /' >>"$R"

mkdir -p "$OUT/masks-fp32"
step masks-fp32 120 $B/blazeneo segment -m $M -b cuda -p fp32 -o "$OUT/masks-fp32" samples
step dice 180 $B/blazeneo eval -m $M -b cuda -p fp16 -p int8 --calib $CAL --images samples --masks "$OUT/masks-fp32"
grep -iE "dice|fp16|int8" "$OUT/dice.log" | head -12 | sed 's/^/    /' >>"$R"

say "total $(( $(date +%s) - T0 )) s"
