#!/usr/bin/python3
"""
compare.py - the BlazeNeo engine against PyTorch eager FP32, side by side, in one run.

    /usr/bin/python3 bench/compare.py [--pth MODEL.pth] [--model MODEL.bzn] [--size 352]
                                      [--threads N] [-n 20] [--warmup 3] [--rounds 3] [--json]

Each round runs, one after the other,
    build/blazeneo bench --json  (the engine: network alone and end to end)
    bench/pytorch_bench.py --json (PyTorch eager FP32, torch.no_grad(), the same checkpoint)
with the same input size, thread count, runs and warm-up, and the order alternates from round
to round (engine first, then PyTorch first, ...) so that neither side always gets the quieter
moment of a noisy machine. Only the main path runs on both sides (no auxiliary branch).

The table gives, for each side, the median over the rounds of each round's statistic, and the
ratios engine / PyTorch: a latency ratio below 1 and an FPS ratio above 1 mean the engine is
faster. "Median ratio of paired rounds" divides the two medians measured next to each other in
the same round, which cancels slow drifts of the machine best. The engine's "network alone"
column is the like-for-like comparison (PyTorch times the network on a ready tensor); "end to
end" adds the resize and normalisation of a 1280x995 frame and the class map at frame size.

Only the standard library is needed here; the PyTorch side runs under --python (default
$BZN_PYTHON, else /usr/bin/python3), which must have torch and numpy.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_PTH = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "blazeneo-dha-neopolyp-small.pth"))
DEFAULT_BZN = os.path.join(ROOT, "models", "blazeneo-dha-neopolyp-small-f16.bzn")
DEFAULT_CLI = os.path.join(ROOT, "build", "blazeneo")


def default_python():
    env = os.environ.get("BZN_PYTHON")
    if env:
        return env
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run_json(cmd):
    """Run a command that prints one JSON object; exit with its stderr if it fails."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write("compare.py: command failed (exit %d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr))
        sys.exit(1)
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        sys.stderr.write("compare.py: %s did not print JSON (%s):\n%s\n" % (cmd[0], e, p.stdout[:2000]))
        sys.exit(1)


def med(values):
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser(description="BlazeNeo engine vs PyTorch eager FP32, alternating rounds")
    ap.add_argument("--pth", default=DEFAULT_PTH, help="PyTorch checkpoint (default: %(default)s)")
    ap.add_argument("--model", default=DEFAULT_BZN, help="engine weight file made from it (default: %(default)s)")
    ap.add_argument("--blazeneo", default=DEFAULT_CLI, help="the engine's CLI (default: %(default)s)")
    ap.add_argument("--python", default=default_python(), help="Python with torch (default: %(default)s)")
    ap.add_argument("--size", type=int, default=352, help="input height = width (default 352)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads on both sides (default: nproc)")
    ap.add_argument("-n", type=int, default=20, help="timed runs per round and side (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--backend", default="cpu", help="engine backend (default cpu)")
    ap.add_argument("--precision", default="fp32", help="engine precision (default fp32)")
    ap.add_argument("--json", action="store_true", help="print every round's raw results as JSON too")
    a = ap.parse_args()
    if a.size <= 0 or a.size % 32:
        ap.error("--size must be a positive multiple of 32")
    if a.n < 1 or a.rounds < 1 or a.threads < 1 or a.warmup < 0:
        ap.error("-n, --rounds and --threads must be at least 1, --warmup at least 0")
    for path, what in ((a.blazeneo, "engine CLI (build it: cmake --build build)"), (a.model, "weight file"),
                       (a.pth, "PyTorch checkpoint")):
        if not os.path.exists(path):
            ap.error("%s not found: %s" % (what, path))

    engine_cmd = [a.blazeneo, "bench", "-m", a.model, "-b", a.backend, "-p", a.precision, "-s", str(a.size),
                  "-t", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]
    torch_cmd = [a.python, os.path.join(HERE, "pytorch_bench.py"), a.pth, "--size", str(a.size),
                 "--threads", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]

    engine, torch_ = [], []
    for r in range(a.rounds):
        order = [("engine", engine_cmd, engine), ("pytorch", torch_cmd, torch_)]
        if r % 2:
            order.reverse()  # alternate who goes first
        for name, cmd, results in order:
            sys.stderr.write("round %d/%d: %s ...\n" % (r + 1, a.rounds, name))
            sys.stderr.flush()
            results.append(run_json(cmd))
            sys.stderr.write("  median %.1f ms\n" % (
                results[-1]["network"]["median_ms"] if name == "engine" else results[-1]["median_ms"]))

    e_net = [e["network"] for e in engine]
    cpu = engine[0]["machine"]["cpu"]
    nproc = engine[0]["machine"]["nproc"]

    def col(rows, key):
        return med([x[key] for x in rows])

    paired = [en["median_ms"] / t["median_ms"] for en, t in zip(e_net, torch_)]
    lines = []
    lines.append("BlazeNeo engine (%s %s) vs PyTorch %s eager FP32: %dx%d, batch 1, main path, %d thread%s" % (
        a.backend, a.precision, torch_[0]["torch"], a.size, a.size, a.threads, "" if a.threads == 1 else "s"))
    lines.append("machine: %s, %d CPUs; %d alternating rounds of %d runs (+%d warm-up) per side" % (
        cpu, nproc, a.rounds, a.n, a.warmup))
    lines.append("engine: %s; PyTorch: %s" % (os.path.basename(a.model), os.path.basename(a.pth)))
    lines.append("")
    lines.append("| | engine, network alone | engine, end to end | PyTorch eager | engine (network) / PyTorch |")
    lines.append("|---|---:|---:|---:|---:|")
    for key, label in (("median_ms", "median latency (ms)"), ("min_ms", "min latency (ms)"),
                       ("mean_ms", "mean latency (ms)"), ("p90_ms", "p90 latency (ms)")):
        en, ee, t = col(e_net, key), col(engine, key), col(torch_, key)
        lines.append("| %s | %.1f | %.1f | %.1f | %.2fx |" % (label, en, ee, t, en / t))
    en, ee, t = col(e_net, "fps"), col(engine, "fps"), col(torch_, "fps")
    lines.append("| FPS (1000 / median) | %.1f | %.1f | %.1f | %.2fx |" % (en, ee, t, en / t))
    er, tr = col(engine, "peak_rss_mb"), col(torch_, "peak_rss_mb")
    lines.append("| peak RSS (MB) | %.0f (one process) | | %.0f | %.2fx |" % (er, tr, er / tr))
    lines.append("")
    lines.append("median ratio of paired rounds (engine network median / PyTorch median): %.2fx  [%s]" % (
        med(paired), ", ".join("%.2f" % p for p in paired)))
    lines.append("engine: %.3f GMAC, %d parameters, %.1f MB weight file, %.1f MB folded f32 weights, "
                 "%.1f MB activation arena" % (engine[0]["gmac"], engine[0]["params"],
                                                engine[0]["weight_file_bytes"] / 1e6, engine[0]["weight_bytes"] / 1e6,
                                                engine[0]["arena_bytes"] / 1e6))
    lines.append("ratios below 1 (latency, memory) or above 1 (FPS) favour the engine; PyTorch's RSS includes "
                 "importing torch")
    print("\n".join(lines))
    if a.json:
        print(json.dumps({"engine": engine, "pytorch": torch_, "paired_median_ratio": med(paired)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
