#!/usr/bin/python3
"""
compare.py - the BlazeNeo engine against PyTorch eager FP32, side by side, in one run.

    /usr/bin/python3 bench/compare.py [--pth MODEL.pth] [--model MODEL.bzn] [--size 352]
                                      [--threads N] [-n 20] [--warmup 3] [--rounds 3] [--json]
                                      [--int8 [--calib CACHE] [--calib-images DIR] [--calib-n 16]]

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

--int8: four sides per round instead of two, all network alone, main path, same input size,
threads, runs and warm-up:
    engine INT8   build/blazeneo bench -p int8 --calib CACHE (the FP32 weight file + the cache)
    PyTorch INT8  pytorch_bench.py --int8: FX post-training static quantization, onednn engine,
                  calibrated on the first --calib-n (16) images of --calib-images
    engine FP32, PyTorch FP32 as above.
Round 1 runs engine INT8, PyTorch INT8, engine FP32, PyTorch FP32; round 2 the reverse; and so
on, so the two INT8 sides always run next to each other and take turns going first (likewise
the FP32 sides). Without --calib, the cache is made first with `blazeneo calibrate` (entropy,
every image of --calib-images) in a temporary folder, and deleted at the end. PyTorch quantizes
(prepare_fx, calibration, convert_fx; untimed) in the first round and saves the quantized state
dict in that folder; later rounds rebuild the same model from it (pytorch_bench.py
--int8-cache) instead of calibrating again. The tables give the medians over the rounds of each
side's statistics, and the ratios engine INT8 / PyTorch INT8, engine FP32 / PyTorch FP32, engine
INT8 / engine FP32 and PyTorch INT8 / PyTorch FP32, each also as the median of the per-round
ratios. The 1-minute load average before each round is printed: on a busy machine, rerun.

Only the standard library is needed here; the PyTorch side runs under --python (default
$BZN_PYTHON, else /usr/bin/python3), which must have torch and numpy.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_PTH = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "blazeneo-dha-neopolyp-small.pth"))
DEFAULT_BZN = os.path.join(ROOT, "models", "blazeneo-dha-neopolyp-small-f16.bzn")
DEFAULT_CLI = os.path.join(ROOT, "build", "blazeneo")
DEFAULT_CALIB_IMAGES = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "neopolyp-small", "calib",
                                                     "images"))


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


def cpu_description():
    """CPU model, family/model numbers and the ISA extensions that matter for INT8, from
    /proc/cpuinfo (e.g. "AMD EPYC (family 26 model 2; AVX-512, VNNI, BF16)")."""
    info, flags = {}, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" not in line:
                    if info:
                        break           # first processor only
                    continue
                k, v = (x.strip() for x in line.split(":", 1))
                if k == "flags":
                    flags = set(v.split())
                elif k in ("model name", "cpu family", "model") and k not in info:
                    info[k] = v
    except OSError:
        return "unknown CPU"
    isa = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("VNNI", "avx512_vnni"),
                                   ("BF16", "avx512_bf16"), ("AMX", "amx_int8")) if flag in flags]
    if "VNNI" not in isa and "avx_vnni" in flags:
        isa.append("AVX-VNNI")
    return "%s (family %s model %s; %s)" % (info.get("model name", "unknown CPU"), info.get("cpu family", "?"),
                                            info.get("model", "?"), ", ".join(isa) or "no AVX2")


def make_calibration_cache(a, folder):
    path = os.path.join(folder, "engine-calib.cache")
    cmd = [a.blazeneo, "calibrate", "-m", a.model, "--images", a.calib_images, "-o", path,
           "-s", str(a.size), "-t", str(a.threads), "-q"]
    sys.stderr.write("making the engine's calibration cache: %s\n" % " ".join(cmd))
    sys.stderr.flush()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0 or not os.path.exists(path):
        sys.stderr.write("compare.py: calibration failed (exit %d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
        sys.exit(1)
    return path


def main_int8(a):
    """--int8: engine INT8 / PyTorch INT8 / engine FP32 / PyTorch FP32, alternating."""
    tmpdir = tempfile.mkdtemp(prefix="bzn-compare-")
    try:
        calib = a.calib or make_calibration_cache(a, tmpdir)
        return run_int8(a, calib, a.calib is None, os.path.join(tmpdir, "pytorch-int8.pt"))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run_int8(a, calib, generated, torch_int8_state):
    common = ["-s", str(a.size), "-t", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]
    eng = [a.blazeneo, "bench", "-m", a.model, "-b", a.backend]
    pyt = [a.python, os.path.join(HERE, "pytorch_bench.py"), a.pth, "--size", str(a.size),
           "--threads", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]
    sides = [  # (key, label, command, is_engine), in the order of odd rounds
        ("e8", "engine INT8", eng + ["-p", "int8", "--calib", calib] + common, True),
        ("t8", "PyTorch INT8", pyt + ["--int8", "--calib-images", a.calib_images, "--calib-n", str(a.calib_n),
                                      "--int8-cache", torch_int8_state], False),
        ("e32", "engine FP32", eng + ["-p", "fp32"] + common, True),
        ("t32", "PyTorch FP32", pyt, False),
    ]
    res = {k: [] for k, _, _, _ in sides}
    loads = []
    for r in range(a.rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        loads.append(os.getloadavg()[0])
        sys.stderr.write("round %d/%d (load average %.2f)\n" % (r + 1, a.rounds, loads[-1]))
        for key, label, cmd, _ in order:
            sys.stderr.write("  %s ..." % label)
            sys.stderr.flush()
            out = run_json(cmd)
            res[key].append(out)
            sys.stderr.write(" median %.1f ms\n" % (out["network"] if "network" in out else out)["median_ms"])
    load_end = os.getloadavg()[0]

    # network-alone statistics of every side, round by round
    net = {k: [(x["network"] if "network" in x else x) for x in v] for k, v in res.items()}

    def col(k, key):
        return med([x[key] for x in net[k]])

    def paired(k1, k2):
        return [x["median_ms"] / y["median_ms"] for x, y in zip(net[k1], net[k2])]

    e8, t8 = res["e8"][0], res["t8"][0]
    lines = []
    lines.append("BlazeNeo engine (%s) INT8 and FP32 vs PyTorch %s FX INT8 (onednn) and eager FP32: "
                 "%dx%d, batch 1, main path, network alone, %d thread%s" % (
                     a.backend, t8["torch"], a.size, a.size, a.threads, "" if a.threads == 1 else "s"))
    lines.append("machine: %s, %d vCPUs; %d alternating rounds of %d runs (+%d warm-up) per side" % (
        cpu_description(), e8["machine"]["nproc"], a.rounds, a.n, a.warmup))
    lines.append("1-minute load average before each round: %s; after the last: %.2f" % (
        ", ".join("%.2f" % x for x in loads), load_end))
    lines.append("engine: %s; INT8 = its weights quantized at load with the scales of %s" % (
        os.path.basename(a.model), "a cache made by `blazeneo calibrate` (entropy, every image of %s)" % a.calib_images
        if generated else calib))
    lines.append("PyTorch: %s; INT8 calibrated on the first %d images of %s" % (
        os.path.basename(a.pth), t8["calib_n"], a.calib_images))
    lines.append("")
    order = [("e8", "engine INT8"), ("t8", "PyTorch INT8"), ("e32", "engine FP32"), ("t32", "PyTorch FP32")]
    lines.append("| | " + " | ".join(l for _, l in order) + " |")
    lines.append("|---|" + "---:|" * len(order))
    stats = (("median_ms", "median latency (ms)"), ("min_ms", "min latency (ms)"),
             ("mean_ms", "mean latency (ms)"), ("p90_ms", "p90 latency (ms)"), ("fps", "FPS (1000 / median)"))
    for key, label in stats:
        lines.append("| %s | " % label + " | ".join("%.1f" % col(k, key) for k, _ in order) + " |")
    lines.append("| engine end to end, median (ms) | %.1f | | %.1f | |" % (
        med([x["median_ms"] for x in res["e8"]]), med([x["median_ms"] for x in res["e32"]])))
    lines.append("| peak RSS (MB) | " + " | ".join("%.0f" % med([x["peak_rss_mb"] for x in res[k]])
                                                   for k, _ in order) + " |")
    lines.append("")
    pairs = [("e8", "t8", "engine INT8 / PyTorch INT8"), ("e32", "t32", "engine FP32 / PyTorch FP32"),
             ("e8", "e32", "engine INT8 / engine FP32"), ("t8", "t32", "PyTorch INT8 / PyTorch FP32")]
    lines.append("| ratio | " + " | ".join(l for _, _, l in pairs) + " |")
    lines.append("|---|" + "---:|" * len(pairs))
    for key, label in stats:
        lines.append("| %s | " % label + " | ".join("%.2fx" % (col(k1, key) / col(k2, key))
                                                    for k1, k2, _ in pairs) + " |")
    lines.append("| median of paired rounds' median ratios | " +
                 " | ".join("%.2fx" % med(paired(k1, k2)) for k1, k2, _ in pairs) + " |")
    lines.append("| per-round median ratios | " + " | ".join(
        ", ".join("%.2f" % x for x in paired(k1, k2)) for k1, k2, _ in pairs) + " |")
    lines.append("")
    lines.append("latency ratios below 1 (FPS above 1) favour the first of each pair. PyTorch's peak RSS "
                 "includes importing torch; for INT8 it is reset after quantizing (PyTorch's calibration "
                 "peaked at %.0f MB; it took %.1f s, untimed, in round 1; later rounds loaded the result)." % (
                     res["t8"][0].get("quantize_peak_rss_mb", 0.0), res["t8"][0]["quantize_s"]))
    print("\n".join(lines))
    if a.json:
        print(json.dumps({"engine_int8": res["e8"], "pytorch_int8": res["t8"], "engine_fp32": res["e32"],
                          "pytorch_fp32": res["t32"], "load_avg_1min": loads + [load_end],
                          "paired_median_ratios": {l: med(paired(k1, k2)) for k1, k2, l in pairs}}, indent=1))
    return 0


def main():
    ap = argparse.ArgumentParser(description="BlazeNeo engine vs PyTorch eager FP32 (and with --int8, engine "
                                             "INT8 vs PyTorch FX INT8), alternating rounds")
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
    ap.add_argument("--int8", action="store_true",
                    help="also compare INT8: engine INT8 vs PyTorch FX INT8 (onednn), next to the FP32 pair")
    ap.add_argument("--calib", help="--int8: the engine's calibration cache (default: made with "
                                    "`blazeneo calibrate` from --calib-images into a temporary folder)")
    ap.add_argument("--calib-images", default=DEFAULT_CALIB_IMAGES,
                    help="--int8: calibration images (default: %(default)s)")
    ap.add_argument("--calib-n", type=int, default=16,
                    help="--int8: PyTorch calibrates on the first N of them (default 16)")
    a = ap.parse_args()
    if a.size <= 0 or a.size % 32:
        ap.error("--size must be a positive multiple of 32")
    if a.n < 1 or a.rounds < 1 or a.threads < 1 or a.warmup < 0:
        ap.error("-n, --rounds and --threads must be at least 1, --warmup at least 0")
    for path, what in ((a.blazeneo, "engine CLI (build it: cmake --build build)"), (a.model, "weight file"),
                       (a.pth, "PyTorch checkpoint")):
        if not os.path.exists(path):
            ap.error("%s not found: %s" % (what, path))

    if a.int8:
        if a.precision != "fp32":
            ap.error("--int8 runs both fp32 and int8: leave --precision out")
        if a.calib_n < 1:
            ap.error("--calib-n must be at least 1")
        if a.calib and not os.path.exists(a.calib):
            ap.error("calibration cache not found: %s" % a.calib)
        if not os.path.isdir(a.calib_images):
            ap.error("calibration images not found: %s" % a.calib_images)
        return main_int8(a)

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
                 "%.1f MB activation arena + %.1f MB backend scratch" % (
                     engine[0]["gmac"], engine[0]["params"], engine[0]["weight_file_bytes"] / 1e6,
                     engine[0]["weight_bytes"] / 1e6, engine[0]["activation_bytes"] / 1e6,
                     engine[0]["scratch_bytes"] / 1e6))
    lines.append("ratios below 1 (latency, memory) or above 1 (FPS) favour the engine; PyTorch's RSS includes "
                 "importing torch")
    print("\n".join(lines))
    if a.json:
        print(json.dumps({"engine": engine, "pytorch": torch_, "paired_median_ratio": med(paired)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
