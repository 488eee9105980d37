#!/usr/bin/env python3
"""
pytorch_bench.py MODEL.pth [--size 352] [--threads 2] [-n 30] [--warmup 3] [--with-aux] [--json]

PyTorch eager FP32 latency of BlazeNeo on the CPU: the baseline the C engine is compared with.

The model is the independent reference (tests/ref/blazeneo_ref.py) loaded from MODEL.pth.
By default only the main path runs (the auxiliary agg1/head_1 keys are dropped, as the engine
does at inference, and as the paper's latency tables do); --with-aux times the full model.
Batch 1, random normal input of size x size, torch.no_grad(), `threads` intra-op threads.
Warm-up runs are excluded. Reports min/median/mean/p90/p99/max in ms (percentiles interpolated
linearly, numpy's default, as `blazeneo bench` does) and FPS (= 1000 / median), the peak RSS of
this process (importing torch alone is a large part of it), and the machine (CPU model, nproc).
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import blazeneo_ref as ref  # noqa: E402


def cpu_model():
    """The "model name" of the first processor in /proc/cpuinfo (as `blazeneo bench` reports it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description="PyTorch eager FP32 latency of BlazeNeo")
    ap.add_argument("model", help="PyTorch checkpoint (.pth)")
    ap.add_argument("--size", type=int, default=352, help="input height = width (multiple of 32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=30, help="timed runs")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    ap.add_argument("--with-aux", action="store_true", help="also run the auxiliary branch")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.size % 32 or a.size <= 0:
        ap.error("--size must be a positive multiple of 32")
    if a.n < 1:
        ap.error("-n must be at least 1")

    torch.set_num_threads(a.threads)
    model = ref.load_checkpoint(a.model, auxiliary=True if a.with_aux else False)
    x = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))

    times = []
    with torch.no_grad():
        for _ in range(a.warmup):
            model(x)
        for _ in range(a.n):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)

    t = np.array(times)
    res = {
        "what": "pytorch-eager-fp32" + ("-with-aux" if a.with_aux else "-main"),
        "model": os.path.basename(a.model),
        "aggregation": model.aggregation,
        "size": a.size,
        "threads": a.threads,
        "runs": a.n,
        "warmup": a.warmup,
        "min_ms": round(float(t.min()), 3),
        "median_ms": round(float(np.median(t)), 3),
        "mean_ms": round(float(t.mean()), 3),
        "p90_ms": round(float(np.percentile(t, 90)), 3),
        "p99_ms": round(float(np.percentile(t, 99)), 3),
        "max_ms": round(float(t.max()), 3),
        "fps": round(1000.0 / float(np.median(t)), 2),
        # ru_maxrss is in kilobytes on Linux; MB here means MiB, as in `blazeneo bench`
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
    }
    if a.json:
        print(json.dumps(res))
    else:
        print("PyTorch %s eager FP32, %s, %dx%d, %d thread(s), %d runs (+%d warm-up)" % (
            torch.__version__, "main + aux" if a.with_aux else "main path only",
            a.size, a.size, a.threads, a.n, a.warmup))
        print("  min %.2f ms  median %.2f ms  mean %.2f ms  p90 %.2f ms  max %.2f ms  ->  %.1f FPS" % (
            res["min_ms"], res["median_ms"], res["mean_ms"], res["p90_ms"], res["max_ms"], res["fps"]))
        print("  peak RSS %.1f MB; %s, %d CPUs" % (res["peak_rss_mb"], res["cpu"], res["nproc"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
