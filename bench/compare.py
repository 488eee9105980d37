#!/usr/bin/python3
"""
compare.py - the BlazeNeo engine against PyTorch eager FP32, side by side, in one run.

    /usr/bin/python3 bench/compare.py [--pth MODEL.pth] [--model MODEL.bzn] [--size 352]
                                      [--threads N] [-n 20] [--warmup 3] [--rounds 3] [--json]
                                      [--int8 [--calib CACHE] [--calib-images DIR] [--calib-n 16]]
                                      [--ort [--ort-dir DIR] [--check-images IMG ...]] [--blazeneo CLI]

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

--ort: ONNX Runtime as one more side (two with --int8), in the same alternating rounds:
    ORT FP32      bench/ort_bench.js on the network exported from the same checkpoint with
                  torch.onnx.export (bench/export_onnx.py: main path, opset 13, fixed input)
    ORT INT8      (with --int8) the same model as QDQ (bench/qdq_onnx.py): per-channel int8
                  weights, per-tensor activation scales from the engine's calibration cache
onnxruntime-node (--ort-version, 1.30.0) is installed the first time into --ort-dir (default
build/ort) with `npm install --ignore-scripts --prefix DIR` (the CPU binaries are in the npm
package; the install script only fetches GPU ones); ORT runs with intra-op threads = --threads,
one inter-op thread, every graph optimisation, sequential execution, on the very input
pytorch_bench.py times. The models are exported once per run into a temporary folder. Before
the rounds, ORT FP32 is checked against PyTorch on --check-images (default: samples/*.jpeg):
max |difference| of the logits and the share of pixels whose class agrees; ORT INT8 likewise
against ORT FP32 and PyTorch; and the graph ORT runs after its fusions is summarised (the INT8
one must be QLinearConv throughout). Odd rounds run engine, PyTorch, ORT (INT8 sides first
with --int8), even rounds the reverse. The tables gain ORT columns and the ratios engine / ORT;
the 1-minute load average before each round is printed. Node (`node`, >= 18) and npm are
needed; the export and the QDQ conversion run under --python.

The engine's CLI is --blazeneo (default $BLAZENEO, else build/blazeneo).

Only the standard library is needed here; the PyTorch side runs under --python (default
$BZN_PYTHON, else /usr/bin/python3), which must have torch and numpy.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_proto  # noqa: E402  (standard library only, as this script)

ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_PTH = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "blazeneo-dha-neopolyp-small.pth"))
DEFAULT_BZN = os.path.join(ROOT, "models", "blazeneo-dha-neopolyp-small-f16.bzn")
DEFAULT_CLI = os.path.join(ROOT, "build", "blazeneo")
DEFAULT_CALIB_IMAGES = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "neopolyp-small", "calib",
                                                     "images"))
DEFAULT_ORT_DIR = os.path.join(ROOT, "build", "ort")
DEFAULT_ORT_VERSION = "1.30.0"
SAMPLES = os.path.join(ROOT, "samples")


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


def run_checked(cmd, what):
    """Run a preparation step; exit with its output if it fails. Returns its stdout."""
    sys.stderr.write("%s: %s\n" % (what, " ".join(cmd)))
    sys.stderr.flush()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write("compare.py: %s failed (exit %d):\n%s%s" % (what, p.returncode, p.stdout[-4000:],
                                                                    p.stderr[-4000:]))
        sys.exit(1)
    return p.stdout


def ensure_ort(a):
    """onnxruntime-node a.ort_version in a.ort_dir/node_modules, installed there if missing.
    --ignore-scripts: the package's install script only downloads GPU (CUDA) binaries, which
    this comparison does not use; the CPU ones ship in the package (bin/napi-v*/linux/x64)."""
    pkg = os.path.join(a.ort_dir, "node_modules", "onnxruntime-node", "package.json")
    have = None
    if os.path.exists(pkg):
        with open(pkg) as f:
            have = json.load(f).get("version")
    if have != a.ort_version:
        os.makedirs(a.ort_dir, exist_ok=True)
        run_checked([a.npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", a.ort_dir,
                     "onnxruntime-node@" + a.ort_version], "installing ONNX Runtime (once)")
        with open(pkg) as f:
            have = json.load(f).get("version")
        if have != a.ort_version:
            sys.stderr.write("compare.py: npm installed onnxruntime-node %s, not %s\n" % (have, a.ort_version))
            sys.exit(1)
    return have


def op_counts(path):
    """{op_type: count} of an ONNX file (the graph ORT saved after its optimisations)."""
    g = onnx_proto.Msg(onnx_proto.load(path).first(7))
    ops = {}
    for n in g.msgs(1):
        ops[n.string(4)] = ops.get(n.string(4), 0) + 1
    return ops


def prepare_ort(a, folder, calib):
    """--ort: install ORT, export the FP32 model (and with calib, the QDQ INT8 one) into folder,
    check them against PyTorch. Returns the commands of the ORT sides and what was checked."""
    version = ensure_ort(a)
    fp32 = os.path.join(folder, "blazeneo-fp32.onnx")
    bench_in = os.path.join(folder, "bench-input.bin")
    check = os.path.join(folder, "check")
    exp = json.loads(run_checked([a.python, "-W", "ignore", os.path.join(HERE, "export_onnx.py"), "--pth", a.pth,
                                  "--size", str(a.size), "-o", fp32, "--bench-input", bench_in, "--check-images"]
                                 + a.check_images + ["--check-dir", check], "exporting to ONNX").strip().splitlines()[-1])
    ort = {"version": version, "export": exp, "check_images": a.check_images}
    base = [a.node, os.path.join(HERE, "ort_bench.js"), "--ort-dir", a.ort_dir, "--threads", str(a.threads)]
    timing = ["-n", str(a.n), "--warmup", str(a.warmup), "--input", bench_in, "--json"]

    def verify(model, tag, refs, precision):
        opt = os.path.join(folder, tag + "-optimized.onnx")
        out = json.loads(run_checked(base + [model, "-n", "1", "--warmup", "0", "--precision", precision, "--json",
                                             "--check", check, "--tag", tag, "--ref", ",".join(refs),
                                             "--optimized-model", opt], "checking " + tag).strip().splitlines()[-1])
        return out["check"]["against"], op_counts(opt)

    ort["fp32_check"], ort["fp32_ops"] = verify(fp32, "ort-fp32", ["torch"], "fp32")
    ort["cmd32"] = base + [fp32, "--precision", "fp32"] + timing
    if calib:
        int8 = os.path.join(folder, "blazeneo-int8-qdq.onnx")
        ort["qdq"] = json.loads(run_checked([a.python, os.path.join(HERE, "qdq_onnx.py"), fp32, "--calib", calib,
                                             "-o", int8, "--report", os.path.join(folder, "qdq-report.json")],
                                            "making the QDQ INT8 model").strip().splitlines()[-1])
        ort["int8_check"], ort["int8_ops"] = verify(int8, "ort-int8", ["ort-fp32", "torch"], "int8")
        ort["cmd8"] = base + [int8, "--precision", "int8"] + timing
    return ort


def ort_lines(ort, threads):
    """The description of the ORT sides and their checks, for the text output."""
    lines = []
    lines.append("ONNX Runtime %s (onnxruntime-node, CPU execution provider, %d intra-op thread%s, 1 inter-op, "
                 "graph optimisation 'all', sequential): torch.onnx.export of the same checkpoint (opset %d, "
                 "main path, BatchNorm folded)%s" % (
                     ort["version"], threads, "" if threads == 1 else "s", ort["export"]["opset"],
                     "; INT8 = QDQ by bench/qdq_onnx.py: per-channel int8 weights, per-tensor %s activations "
                     "with the engine's cache scales" % ort["qdq"]["activations"] if "qdq" in ort else ""))
    c = ort["fp32_check"]["torch"]
    lines.append("ORT FP32 vs PyTorch FP32 (%d image%s: %s): max |logit difference| %.3g, mean %.3g; "
                 "class agreement %.4f%% of pixels" % (
                     c["images"], "" if c["images"] == 1 else "s",
                     ", ".join(os.path.basename(p) for p in ort["check_images"]), c["max_abs_diff"],
                     c["mean_abs_diff"], 100 * c["argmax_agreement"]))
    if "int8_check" in ort:
        c8, t8 = ort["int8_check"]["ort-fp32"], ort["int8_check"]["torch"]
        lines.append("ORT INT8 vs ORT FP32 on the same images: class agreement %.3f%% of pixels (vs PyTorch FP32 "
                     "%.3f%%); max |logit difference| %.3g, mean %.3g" % (
                         100 * c8["argmax_agreement"], 100 * t8["argmax_agreement"], c8["max_abs_diff"],
                         c8["mean_abs_diff"]))

    def ops(d):
        return ", ".join("%s %d" % kv for kv in sorted(d.items(), key=lambda kv: -kv[1]))
    lines.append("ORT's optimised FP32 graph: %s" % ops(ort["fp32_ops"]))
    if "int8_ops" in ort:
        lines.append("ORT's optimised INT8 graph: %s" % ops(ort["int8_ops"]))
    return lines


def ort_json(ort):
    return {k: v for k, v in ort.items() if k not in ("cmd32", "cmd8")}


def main_int8(a):
    """--int8: engine INT8 / PyTorch INT8 / engine FP32 / PyTorch FP32 (and with --ort, ORT INT8
    and FP32), alternating."""
    tmpdir = tempfile.mkdtemp(prefix="bzn-compare-")
    try:
        calib = a.calib or make_calibration_cache(a, tmpdir)
        ort = prepare_ort(a, tmpdir, calib) if a.ort else None
        return run_int8(a, calib, a.calib is None, os.path.join(tmpdir, "pytorch-int8.pt"), ort)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def row(label, cells):
    """A table row; empty cells as '| |'."""
    return "| %s |" % label + "".join(" %s |" % c if c else " |" for c in cells)


def run_int8(a, calib, generated, torch_int8_state, ort=None):
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
    if ort:
        sides.insert(2, ("o8", "ORT INT8", ort["cmd8"], False))
        sides.append(("o32", "ORT FP32", ort["cmd32"], False))
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
    lines.append("BlazeNeo engine (%s) INT8 and FP32 vs PyTorch %s FX INT8 (onednn) and eager FP32%s: "
                 "%dx%d, batch 1, main path, network alone, %d thread%s" % (
                     a.backend, t8["torch"], " and ONNX Runtime %s QDQ INT8 and FP32" % ort["version"] if ort else "",
                     a.size, a.size, a.threads, "" if a.threads == 1 else "s"))
    lines.append("machine: %s, %d vCPUs; %d alternating rounds of %d runs (+%d warm-up) per side" % (
        cpu_description(), e8["machine"]["nproc"], a.rounds, a.n, a.warmup))
    lines.append("1-minute load average before each round: %s; after the last: %.2f" % (
        ", ".join("%.2f" % x for x in loads), load_end))
    lines.append("engine: %s; INT8 = its weights quantized at load with the scales of %s" % (
        os.path.basename(a.model), "a cache made by `blazeneo calibrate` (entropy, every image of %s)" % a.calib_images
        if generated else calib))
    lines.append("PyTorch: %s; INT8 calibrated on the first %d images of %s" % (
        os.path.basename(a.pth), t8["calib_n"], a.calib_images))
    if ort:
        lines += ort_lines(ort, a.threads)
    lines.append("")
    order = [(k, l) for k, l, _, _ in sides]
    lines.append("| | " + " | ".join(l for _, l in order) + " |")
    lines.append("|---|" + "---:|" * len(order))
    stats = (("median_ms", "median latency (ms)"), ("min_ms", "min latency (ms)"),
             ("mean_ms", "mean latency (ms)"), ("p90_ms", "p90 latency (ms)"), ("fps", "FPS (1000 / median)"))
    for key, label in stats:
        lines.append("| %s | " % label + " | ".join("%.1f" % col(k, key) for k, _ in order) + " |")
    lines.append(row("engine end to end, median (ms)",
                     ["%.1f" % med([x["median_ms"] for x in res[k]]) if k.startswith("e") else "" for k, _ in order]))
    lines.append("| peak RSS (MB) | " + " | ".join("%.0f" % med([x["peak_rss_mb"] for x in res[k]])
                                                   for k, _ in order) + " |")
    lines.append("")
    pairs = [("e8", "t8", "engine INT8 / PyTorch INT8"), ("e32", "t32", "engine FP32 / PyTorch FP32"),
             ("e8", "e32", "engine INT8 / engine FP32"), ("t8", "t32", "PyTorch INT8 / PyTorch FP32")]
    if ort:
        pairs = [pairs[0], ("e8", "o8", "engine INT8 / ORT INT8"), pairs[1], ("e32", "o32", "engine FP32 / ORT FP32"),
                 pairs[2], pairs[3], ("o8", "o32", "ORT INT8 / ORT FP32")]
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
                     res["t8"][0].get("quantize_peak_rss_mb", 0.0), res["t8"][0]["quantize_s"]) +
                 (" ORT's includes Node.js itself." if ort else ""))
    print("\n".join(lines))
    if a.json:
        out = {"engine_int8": res["e8"], "pytorch_int8": res["t8"], "engine_fp32": res["e32"],
               "pytorch_fp32": res["t32"], "load_avg_1min": loads + [load_end],
               "paired_median_ratios": {l: med(paired(k1, k2)) for k1, k2, l in pairs}}
        if ort:
            out.update({"onnxruntime_int8": res["o8"], "onnxruntime_fp32": res["o32"], "onnxruntime": ort_json(ort)})
        print(json.dumps(out, indent=1))
    return 0


def run_fp32(a, ort=None):
    """The engine (one precision) vs PyTorch eager FP32 (and with --ort, ORT FP32)."""
    engine_cmd = [a.blazeneo, "bench", "-m", a.model, "-b", a.backend, "-p", a.precision, "-s", str(a.size),
                  "-t", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]
    torch_cmd = [a.python, os.path.join(HERE, "pytorch_bench.py"), a.pth, "--size", str(a.size),
                 "--threads", str(a.threads), "-n", str(a.n), "--warmup", str(a.warmup), "--json"]

    engine, torch_, ortres = [], [], []
    sides = [("engine", engine_cmd, engine), ("pytorch", torch_cmd, torch_)]
    if ort:
        sides.append(("onnxruntime", ort["cmd32"], ortres))
    loads = []
    for r in range(a.rounds):
        order = list(sides)
        if r % 2:
            order.reverse()  # alternate who goes first
        loads.append(os.getloadavg()[0])
        for name, cmd, results in order:
            sys.stderr.write("round %d/%d: %s ...\n" % (r + 1, a.rounds, name))
            sys.stderr.flush()
            results.append(run_json(cmd))
            sys.stderr.write("  median %.1f ms\n" % (
                results[-1]["network"]["median_ms"] if name == "engine" else results[-1]["median_ms"]))
    load_end = os.getloadavg()[0]

    e_net = [e["network"] for e in engine]
    cpu = engine[0]["machine"]["cpu"]
    nproc = engine[0]["machine"]["nproc"]

    def col(rows, key):
        return med([x[key] for x in rows])

    paired = [en["median_ms"] / t["median_ms"] for en, t in zip(e_net, torch_)]
    paired_ort = [en["median_ms"] / o["median_ms"] for en, o in zip(e_net, ortres)]
    lines = []
    lines.append("BlazeNeo engine (%s %s) vs PyTorch %s eager FP32%s: %dx%d, batch 1, main path, %d thread%s" % (
        a.backend, a.precision, torch_[0]["torch"], " and ONNX Runtime %s FP32" % ort["version"] if ort else "",
        a.size, a.size, a.threads, "" if a.threads == 1 else "s"))
    lines.append("machine: %s, %d CPUs; %d alternating rounds of %d runs (+%d warm-up) per side" % (
        cpu, nproc, a.rounds, a.n, a.warmup))
    lines.append("engine: %s; PyTorch: %s" % (os.path.basename(a.model), os.path.basename(a.pth)))
    if ort:
        lines.append("1-minute load average before each round: %s; after the last: %.2f" % (
            ", ".join("%.2f" % x for x in loads), load_end))
        lines += ort_lines(ort, a.threads)
    lines.append("")
    if ort:
        lines.append("| | engine, network alone | engine, end to end | PyTorch eager | ORT FP32 | "
                     "engine (network) / PyTorch | engine (network) / ORT |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
    else:
        lines.append("| | engine, network alone | engine, end to end | PyTorch eager | engine (network) / PyTorch |")
        lines.append("|---|---:|---:|---:|---:|")
    for key, label in (("median_ms", "median latency (ms)"), ("min_ms", "min latency (ms)"),
                       ("mean_ms", "mean latency (ms)"), ("p90_ms", "p90 latency (ms)")):
        en, ee, t = col(e_net, key), col(engine, key), col(torch_, key)
        if ort:
            o = col(ortres, key)
            lines.append("| %s | %.1f | %.1f | %.1f | %.1f | %.2fx | %.2fx |" % (label, en, ee, t, o, en / t, en / o))
        else:
            lines.append("| %s | %.1f | %.1f | %.1f | %.2fx |" % (label, en, ee, t, en / t))
    en, ee, t = col(e_net, "fps"), col(engine, "fps"), col(torch_, "fps")
    if ort:
        o = col(ortres, "fps")
        lines.append("| FPS (1000 / median) | %.1f | %.1f | %.1f | %.1f | %.2fx | %.2fx |" % (en, ee, t, o, en / t, en / o))
    else:
        lines.append("| FPS (1000 / median) | %.1f | %.1f | %.1f | %.2fx |" % (en, ee, t, en / t))
    er, tr = col(engine, "peak_rss_mb"), col(torch_, "peak_rss_mb")
    if ort:
        orr = col(ortres, "peak_rss_mb")
        lines.append("| peak RSS (MB) | %.0f (one process) | | %.0f | %.0f | %.2fx | %.2fx |" % (
            er, tr, orr, er / tr, er / orr))
    else:
        lines.append("| peak RSS (MB) | %.0f (one process) | | %.0f | %.2fx |" % (er, tr, er / tr))
    lines.append("")
    lines.append("median ratio of paired rounds (engine network median / PyTorch median): %.2fx  [%s]" % (
        med(paired), ", ".join("%.2f" % p for p in paired)))
    if ort:
        lines.append("median ratio of paired rounds (engine network median / ORT median): %.2fx  [%s]" % (
            med(paired_ort), ", ".join("%.2f" % p for p in paired_ort)))
    lines.append("engine: %.3f GMAC, %d parameters, %.1f MB weight file, %.1f MB of weights in the backend's forms, "
                 "%.1f MB activation arena + %.1f MB backend scratch" % (
                     engine[0]["gmac"], engine[0]["params"], engine[0]["weight_file_bytes"] / 1e6,
                     engine[0]["prepared_weight_bytes"] / 1e6, engine[0]["activation_bytes"] / 1e6,
                     engine[0]["scratch_bytes"] / 1e6))
    lines.append("ratios below 1 (latency, memory) or above 1 (FPS) favour the engine; PyTorch's RSS includes "
                 "importing torch" + ("; ORT's includes Node.js" if ort else ""))
    print("\n".join(lines))
    if a.json:
        out = {"engine": engine, "pytorch": torch_, "paired_median_ratio": med(paired)}
        if ort:
            out.update({"onnxruntime": ortres, "paired_median_ratio_ort": med(paired_ort),
                        "onnxruntime_setup": ort_json(ort), "load_avg_1min": loads + [load_end]})
        print(json.dumps(out, indent=1))
    return 0


def main():
    ap = argparse.ArgumentParser(description="BlazeNeo engine vs PyTorch eager FP32 (and with --int8, engine "
                                             "INT8 vs PyTorch FX INT8; with --ort, ONNX Runtime too), "
                                             "alternating rounds")
    ap.add_argument("--pth", default=DEFAULT_PTH, help="PyTorch checkpoint (default: %(default)s)")
    ap.add_argument("--model", default=DEFAULT_BZN, help="engine weight file made from it (default: %(default)s)")
    ap.add_argument("--blazeneo", default=os.environ.get("BLAZENEO") or DEFAULT_CLI,
                    help="the engine's CLI (default: $BLAZENEO, else %s)" % DEFAULT_CLI)
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
    ap.add_argument("--ort", action="store_true",
                    help="also run ONNX Runtime (onnxruntime-node): FP32, and with --int8 a QDQ INT8 model made "
                         "with the engine's calibration scales")
    ap.add_argument("--ort-dir", default=DEFAULT_ORT_DIR,
                    help="--ort: where onnxruntime-node is (or is installed, with npm --prefix; "
                         "default: %(default)s)")
    ap.add_argument("--ort-version", default=DEFAULT_ORT_VERSION, help="--ort: onnxruntime-node version "
                                                                       "(default %(default)s)")
    ap.add_argument("--node", default="node", help="--ort: Node.js (default: %(default)s)")
    ap.add_argument("--npm", default="npm", help="--ort: npm, for the first install (default: %(default)s)")
    ap.add_argument("--check-images", nargs="+", metavar="IMG",
                    help="--ort: images on which ORT is checked against PyTorch (default: samples/*.jpeg)")
    a = ap.parse_args()
    if a.size <= 0 or a.size % 32:
        ap.error("--size must be a positive multiple of 32")
    if a.n < 1 or a.rounds < 1 or a.threads < 1 or a.warmup < 0:
        ap.error("-n, --rounds and --threads must be at least 1, --warmup at least 0")
    for path, what in ((a.blazeneo, "engine CLI (build it: cmake --build build)"), (a.model, "weight file"),
                       (a.pth, "PyTorch checkpoint")):
        if not os.path.exists(path):
            ap.error("%s not found: %s" % (what, path))
    if a.ort:
        if a.check_images is None:
            a.check_images = sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES)
                                    if f.lower().endswith((".jpg", ".jpeg", ".png"))) if os.path.isdir(SAMPLES) else []
        if not a.check_images:
            ap.error("--ort: no images to check ORT against PyTorch with (--check-images)")
        for path in a.check_images:
            if not os.path.exists(path):
                ap.error("--check-images: not found: %s" % path)
        if shutil.which(a.node) is None:
            ap.error("--ort: Node.js not found (%s)" % a.node)
        a.ort_dir = os.path.abspath(a.ort_dir)
    elif a.check_images is not None:
        ap.error("--check-images goes with --ort")

    # a SIGTERM (timeout, kill) ends the run through the finally clauses: the temporary folder
    # goes, and subprocess.run kills the side that was running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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

    if not a.ort:
        return run_fp32(a)
    tmpdir = tempfile.mkdtemp(prefix="bzn-compare-")
    try:
        return run_fp32(a, prepare_ort(a, tmpdir, None))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
