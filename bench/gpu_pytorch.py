#!/usr/bin/env python3
"""
gpu_pytorch.py [--size 352] [--batch 1 32] [-n 200] [--warmup 20] [--json FILE]

PyTorch on the GPU, the baseline bench/gpu-check.sh measures the CUDA backend against in the
same run: BlazeNeo (tests/ref/blazeneo_ref.py, DHA, main head only, as the engine times it;
random weights: only the architecture matters for speed) in inference mode, at batch 1 and
batch 32, size x size, in these modes:

  eager-fp32           model(x), float32, NCHW
  eager-fp16-cl        half weights and input, channels_last
  graph-fp32           one torch.cuda.CUDAGraph of the forward, replayed
  graph-fp16-cl        the same in half, channels_last
  compile-fp32         torch.compile(mode="reduce-overhead") (CUDA graphs inside)
  compile-fp16-cl      the same in half, channels_last

TF32 is off (torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 =
False) so FP32 is true FP32, as the engine's -p fp32. Each figure is the median over n timed
runs of CUDA-event time around one forward (graph replay), after warm-up, in ms per run, and
images/s = batch * 1000 / median. A mode that fails (torch.compile without a working
compiler, say) is reported with its error instead of a figure.
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import blazeneo_ref as ref  # noqa: E402


def timed(fn, n, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(n):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], times[0]


def make_model(half, channels_last):
    torch.manual_seed(0)
    m = ref.BlazeNeo("DHA", auxiliary=False, num_classes=3).cuda().eval()
    if half:
        m = m.half()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


def make_input(batch, size, half, channels_last):
    x = torch.randn(batch, 3, size, size, device="cuda")
    if half:
        x = x.half()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def run_mode(mode, batch, size, n, warmup):
    half = "fp16" in mode
    cl = mode.endswith("-cl")
    model = make_model(half, cl)
    x = make_input(batch, size, half, cl)
    with torch.inference_mode():
        if mode.startswith("eager"):
            fn = lambda: model(x)  # noqa: E731
        elif mode.startswith("graph"):
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                model(x)
            fn = g.replay
        else:
            cm = torch.compile(model, mode="reduce-overhead")
            for _ in range(3):
                cm(x)
            fn = lambda: cm(x)  # noqa: E731
        med, best = timed(fn, n, warmup)
    return {"mode": mode, "batch": batch, "size": size, "median_ms": med, "min_ms": best,
            "images_per_s": batch * 1000.0 / med}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=352)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=["eager-fp32", "eager-fp16-cl", "graph-fp32", "graph-fp16-cl",
                                                   "compile-fp32", "compile-fp16-cl"])
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_pytorch.py: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    rows = []
    print("PyTorch %s on %s, %dx%d, median of %d runs" % (torch.__version__, torch.cuda.get_device_name(0), a.size,
                                                         a.size, a.n))
    for batch in a.batch:
        for mode in a.modes:
            t0 = time.time()
            try:
                r = run_mode(mode, batch, a.size, a.n, a.warmup)
                print("  batch %-3d %-16s %8.3f ms  %9.0f images/s  (%.0f s)" % (batch, mode, r["median_ms"],
                                                                                r["images_per_s"], time.time() - t0))
            except Exception as e:  # a mode that cannot run here is reported, not fatal
                r = {"mode": mode, "batch": batch, "size": a.size, "error": "%s: %s" % (type(e).__name__, e)}
                print("  batch %-3d %-16s failed: %s" % (batch, mode, r["error"][:200]))
            rows.append(r)
            torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
