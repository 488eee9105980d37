#!/usr/bin/env python3
"""
pytorch_bench.py MODEL.pth [--size 352] [--threads 2] [-n 30] [--warmup 3] [--with-aux] [--json]
                           [--int8 [--calib-images DIR] [--calib-n 16] [--int8-cache FILE]]
                           [--eval DIR]

PyTorch CPU latency of BlazeNeo: the baseline the C engine is compared with.

The model is the independent reference (tests/ref/blazeneo_ref.py) loaded from MODEL.pth.
By default only the main path runs (the auxiliary agg1/head_1 keys are dropped, as the engine
does at inference, and as the paper's latency tables do); --with-aux times the full model.
Batch 1, random normal input of size x size, torch.no_grad(), `threads` intra-op threads.
Warm-up runs are excluded. Reports min/median/mean/p90/p99/max in ms (percentiles interpolated
linearly, numpy's default, as `blazeneo bench` does) and FPS (= 1000 / median), the peak RSS of
this process (importing torch alone is a large part of it), and the machine (CPU model, nproc).

Precision:
  default  eager FP32.
  --int8   PyTorch's own INT8: FX graph mode post-training static quantization with the oneDNN
           backend (torch.backends.quantized.engine = "onednn",
           get_default_qconfig_mapping("onednn"): per-tensor affine quint8 activations with
           histogram observers, per-channel symmetric qint8 weights; Conv+BN(+ReLU) fused).
           prepare_fx, then calibration on the first --calib-n images (sorted by name) of
           --calib-images with the spec's preprocessing (blazeneo_ref.preprocess at
           size x size), then convert_fx. The converted GraphModule runs in eager mode (no
           TorchScript), timed exactly as FP32. The network traces as it is: no wrapper, leaf
           module or other change was needed (quantized input -> ... -> one dequantize at the
           end; the bilinear upsamplings and concatenations run on quantized tensors).
           Preparation and calibration are not timed; their seconds are reported, and so is
           their peak RSS (quantize_peak_rss_mb: the first observed pass peaks at ~1.5 GB);
           peak_rss_mb is then reset (/proc/self/clear_refs) and measures inference only.
           --int8-cache FILE saves the quantized state dict, and later runs with the same
           checkpoint, size and calibration images rebuild the model from it without
           calibrating (bit-identical outputs; compare.py uses this from its second round on).

--eval DIR also measures accuracy on DIR/images with DIR/masks (tests/ref/eval_ref.py's
protocol: PIL preprocessing, main head, nearest resize of the class map to the mask, micro
Dice/IoU for seg, neo and non) with the model as timed (FP32 or INT8), after the timing.
"""
import argparse
import gc
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

DEFAULT_CALIB = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "neopolyp-small",
                                              "calib", "images"))
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


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


def proc_status_mb(key):
    """VmRSS / VmHWM of this process from /proc/self/status in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0: writing 5 to
    /proc/self/clear_refs). Returns True when it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def image_names(folder):
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))


def quantize_fx_int8(model, size, calib_dir, calib_n, cache=None):
    """FX post-training static quantization (oneDNN backend) of an eval-mode FP32 model,
    calibrated on the first calib_n images of calib_dir. Returns (quantized model, info).

    cache: a file for the quantized state dict. When it holds one made from the same
    checkpoint, size and calibration images, the model is prepared and converted without
    calibrating and the state dict (weights, scales, zero points) loaded from it: the same
    model, bit for bit, in about a second instead of a calibration. Otherwise the model is
    calibrated and the state dict written there."""
    import warnings
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if "onednn" not in torch.backends.quantized.supported_engines:
        raise SystemExit("pytorch_bench: this torch (%s) has no onednn quantized engine (supported: %s)"
                         % (torch.__version__, torch.backends.quantized.supported_engines))
    torch.backends.quantized.engine = "onednn"
    names = image_names(calib_dir)[:calib_n]
    if not names:
        raise SystemExit("pytorch_bench: no calibration images in %s" % calib_dir)
    meta = {"checkpoint": model.checkpoint_path, "size": size, "calib_images": os.path.abspath(calib_dir),
            "calib_names": names, "torch": torch.__version__, "qconfig": "onednn-default"}
    saved = None
    if cache and os.path.exists(cache):
        saved = torch.load(cache, map_location="cpu")
        if not isinstance(saved, dict) or saved.get("meta") != meta:
            saved = None                                  # made for something else: redo
    t0 = time.perf_counter()
    example = torch.zeros(1, 3, size, size)
    prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), example_inputs=(example,))
    if saved is None:
        with torch.no_grad():
            for n in names:
                prepared(ref.preprocess(os.path.join(calib_dir, n), (size, size)))
        quantized = convert_fx(prepared)
    else:
        with warnings.catch_warnings():   # "must run observer before calling calculate_qparams"
            warnings.simplefilter("ignore")
            quantized = convert_fx(prepared)
        quantized.load_state_dict(saved["state_dict"], strict=True)
    quantized.eval()
    if cache and saved is None:
        tmp = cache + ".tmp%d" % os.getpid()
        torch.save({"meta": meta, "state_dict": quantized.state_dict()}, tmp)
        os.replace(tmp, cache)
    code = quantized.code
    info = {
        "quant_engine": torch.backends.quantized.engine,
        "qconfig": "get_default_qconfig_mapping('onednn')",
        "calib_images": os.path.abspath(calib_dir),
        "calib_n": len(names),
        "calib_size": size,
        "quantized_from_cache": saved is not None,
        "quantize_s": round(time.perf_counter() - t0, 2),
        # how often the quantized graph leaves INT8 (1 = only the final output)
        "dequantize_nodes": code.count(".dequantize()"),
        "quantize_nodes": code.count("torch.quantize_per_tensor("),
    }
    return quantized, info


def evaluate(model, folder, size):
    """eval_ref's protocol on folder/images + folder/masks with this model. Returns a dict."""
    import eval_ref
    images, masks = os.path.join(folder, "images"), os.path.join(folder, "masks")
    counts = {c: [0, 0, 0] for c in ("seg", "neo", "non")}
    used, t0 = 0, time.time()
    for name in image_names(images):
        mask_path = eval_ref.find_mask(masks, name)
        if mask_path is None:
            continue
        gt = eval_ref.ground_truth(mask_path)
        x = ref.preprocess(os.path.join(images, name), (size, size))
        with torch.no_grad():
            out = model(x)
        cls = ref.classes_from_logits(out[-1] if isinstance(out, tuple) else out)[0]   # main head
        pred = eval_ref.resize_nearest(cls, gt.shape[1], gt.shape[0], "pil")
        eval_ref.add_counts(counts, pred, gt)
        used += 1
    res = {"dir": os.path.abspath(folder), "images": used, "seconds": round(time.time() - t0, 1)}
    for c in ("seg", "neo", "non"):
        d, i = eval_ref.scores(*counts[c])
        res["dice_" + c] = round(d, 4)
        res["iou_" + c] = round(i, 4)
    return res


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU latency of BlazeNeo (eager FP32, or FX INT8)")
    ap.add_argument("model", help="PyTorch checkpoint (.pth)")
    ap.add_argument("--size", type=int, default=352, help="input height = width (multiple of 32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=30, help="timed runs")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    ap.add_argument("--with-aux", action="store_true", help="also run the auxiliary branch")
    ap.add_argument("--int8", action="store_true",
                    help="PyTorch INT8: FX post-training static quantization, onednn engine")
    ap.add_argument("--calib-images", default=DEFAULT_CALIB,
                    help="--int8: calibration images (default: %(default)s)")
    ap.add_argument("--calib-n", type=int, default=16, help="--int8: calibrate on the first N images (default 16)")
    ap.add_argument("--int8-cache", metavar="FILE",
                    help="--int8: keep the quantized state dict in FILE and reuse it when it matches "
                         "(same checkpoint, size, calibration images): no recalibration")
    ap.add_argument("--eval", metavar="DIR",
                    help="also measure Dice/IoU on DIR/images + DIR/masks (eval_ref's protocol)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    if a.size % 32 or a.size <= 0:
        ap.error("--size must be a positive multiple of 32")
    if a.n < 1:
        ap.error("-n must be at least 1")
    if a.int8 and a.calib_n < 1:
        ap.error("--calib-n must be at least 1")
    if a.int8 and not os.path.isdir(a.calib_images):
        ap.error("calibration folder not found: %s" % a.calib_images)
    if a.eval and not os.path.isdir(os.path.join(a.eval, "images")):
        ap.error("--eval: %s has no images/ folder" % a.eval)

    torch.set_num_threads(a.threads)
    model = ref.load_checkpoint(a.model, auxiliary=True if a.with_aux else False)
    aggregation = model.aggregation
    qinfo = None
    if a.int8:
        model.checkpoint_path = os.path.abspath(a.model)
        model, qinfo = quantize_fx_int8(model, a.size, a.calib_images, a.calib_n, a.int8_cache)
        # The first calibration pass (prepared model with histogram observers) peaks at
        # ~1.5 GB, three times what inference needs: report it apart, and measure the peak
        # RSS of inference from here on (the FP32 model and the prepared one are gone).
        gc.collect()
        qinfo["quantize_peak_rss_mb"] = round(proc_status_mb("VmHWM") or 0.0, 1)
        qinfo["peak_rss_reset"] = reset_peak_rss()
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
    # VmHWM: this process's own peak (since the reset, for INT8: inference only); not
    # ru_maxrss, which Linux carries across exec from the process that started this one
    peak_rss = proc_status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    prec = "fx-int8" if a.int8 else "eager-fp32"
    res = {
        "what": "pytorch-" + prec + ("-with-aux" if a.with_aux else "-main"),
        "precision": "int8" if a.int8 else "fp32",
        "model": os.path.basename(a.model),
        "aggregation": aggregation,
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
        # MiB, as in `blazeneo bench`
        "peak_rss_mb": round(peak_rss, 1),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
    }
    if qinfo:
        res.update(qinfo)
    if a.eval:
        res["eval"] = evaluate(model, a.eval, a.size)
    if a.json:
        print(json.dumps(res))
    else:
        if a.int8:
            desc = "FX INT8 (onednn, calibrated on %d images; %s in %.1f s)" % (
                qinfo["calib_n"], "loaded from --int8-cache" if qinfo["quantized_from_cache"] else "quantized",
                qinfo["quantize_s"])
        else:
            desc = "eager FP32"
        print("PyTorch %s %s, %s, %dx%d, %d thread(s), %d runs (+%d warm-up)" % (
            torch.__version__, desc, "main + aux" if a.with_aux else "main path only",
            a.size, a.size, a.threads, a.n, a.warmup))
        print("  min %.2f ms  median %.2f ms  mean %.2f ms  p90 %.2f ms  max %.2f ms  ->  %.1f FPS" % (
            res["min_ms"], res["median_ms"], res["mean_ms"], res["p90_ms"], res["max_ms"], res["fps"]))
        print("  peak RSS %.1f MB; %s, %d CPUs" % (res["peak_rss_mb"], res["cpu"], res["nproc"]))
        if a.eval:
            e = res["eval"]
            print("  %s (%d images): Dice seg %.4f neo %.4f non %.4f; IoU seg %.4f neo %.4f non %.4f" % (
                e["dir"], e["images"], e["dice_seg"], e["dice_neo"], e["dice_non"],
                e["iou_seg"], e["iou_neo"], e["iou_non"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
