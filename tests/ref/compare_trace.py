#!/usr/bin/env python3
"""
compare_trace.py MODEL.pth TRACE_DIR [--rtol 1e-4] [--threads 2] [--quiet]

Audit the C engine against PyTorch, module by module.

`blazeneo trace -m MODEL.bzn IMAGE -o TRACE_DIR` writes the engine's preprocessed input
(TRACE_DIR/input.npy), its logits (main.npy, aux.npy when the auxiliary branch ran) and one
<module path>.npy per layer output (e.g. encoder.base.3.layers.5.npy, rfb4.npy, head_2.npy).
This script loads MODEL.pth with the independent reference (blazeneo_ref.py), runs it on the
SAME input tensor with forward hooks on every module, and compares every trace file that has
a PyTorch counterpart:

    error = max |engine - pytorch|,   relative = error / (max(pytorch) - min(pytorch))

A tensor passes when relative <= rtol (when PyTorch's tensor is constant, the error is taken
as absolute). Trace files without a PyTorch module of that name (e.g. engine-internal
concatenations) are listed as skipped. A trace may hold 1xCxHxW or CxHxW arrays.
Exit status: 0 when everything compared passes, 1 on any FAIL (or when nothing at all could
be compared), 2 on usage errors.
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blazeneo_ref as ref  # noqa: E402


def compare(engine, torch_out, rtol):
    """(shape string, max abs error, relative error, ok, note) of one tensor pair."""
    t = np.asarray(torch_out, dtype=np.float64)
    e = np.asarray(engine)
    if e.size != t.size:
        return "x".join(map(str, e.shape)), float("nan"), float("nan"), False, \
            "shape %s, PyTorch %s" % (e.shape, t.shape)
    # Accept 1xCxHxW vs CxHxW; any other shape difference with equal size is suspicious.
    if tuple(s for s in e.shape if s != 1) != tuple(s for s in t.shape if s != 1):
        return "x".join(map(str, e.shape)), float("nan"), float("nan"), False, \
            "shape %s, PyTorch %s" % (e.shape, t.shape)
    e = e.astype(np.float64).reshape(t.shape)
    shape = "x".join(map(str, t.shape[1:] if t.ndim == 4 else t.shape))
    if not np.isfinite(e).all():
        return shape, float("nan"), float("nan"), False, "non-finite values in the trace"
    err = float(np.abs(e - t).max()) if t.size else 0.0
    span = float(t.max() - t.min()) if t.size else 0.0
    rel = err / span if span > 0 else err
    return shape, err, rel, rel <= rtol, ("PyTorch tensor is constant" if span == 0 else "")


def load_input(trace_dir):
    x = np.load(os.path.join(trace_dir, "input.npy")).astype(np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError("input.npy must be 1x3xHxW or 3xHxW, got %s" % (x.shape,))
    if x.shape[2] % 32 or x.shape[3] % 32:
        raise ValueError("input %dx%d: H and W must be multiples of 32" % x.shape[2:])
    return torch.from_numpy(np.ascontiguousarray(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[2])
    ap.add_argument("model", help="PyTorch checkpoint (.pth)")
    ap.add_argument("trace_dir", help="directory written by `blazeneo trace`")
    ap.add_argument("--rtol", type=float, default=1e-4,
                    help="allowed max error relative to the PyTorch tensor's range")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    if not os.path.exists(os.path.join(a.trace_dir, "input.npy")):
        print("compare_trace: %s/input.npy not found" % a.trace_dir, file=sys.stderr)
        return 2
    model = ref.load_checkpoint(a.model)
    x = load_input(a.trace_dir)
    out, rec = ref.capture_module_outputs(model, x)
    aux, main_logits = out if model.auxiliary else (None, out)

    # The logits first-class: main.npy and aux.npy.
    refs = dict(rec)
    refs["main"] = main_logits.numpy()
    if aux is not None:
        refs["aux"] = aux.numpy()

    files = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(a.trace_dir, "*.npy"))}
    files.pop("input", None)
    order = [n for n in rec if n in files] + [n for n in ("main", "aux") if n in files]
    skipped = sorted(n for n in files if n not in refs)
    rows, failures = [], 0
    for name in order:
        shape, err, rel, ok, note = compare(np.load(files[name]), refs[name], a.rtol)
        failures += not ok
        rows.append((name, shape, err, rel, ok, note))

    if "aux" in files and aux is None:
        rows.append(("aux", "-", float("nan"), float("nan"), False,
                     "trace has aux.npy but the checkpoint has no auxiliary branch"))
        failures += 1

    width = max([len(r[0]) for r in rows] + [6])
    print("model %s: %s, %s, %d classes; input %dx%d; rtol %g" % (
        os.path.basename(a.model), model.aggregation,
        "auxiliary" if model.auxiliary else "no auxiliary", model.num_classes,
        x.shape[2], x.shape[3], a.rtol))
    print("%-*s  %-14s  %12s  %12s  %s" % (width, "module", "shape", "max abs err",
                                          "rel (range)", "result"))
    for name, shape, err, rel, ok, note in rows:
        if a.quiet and ok:
            continue
        print("%-*s  %-14s  %12.4g  %12.4g  %s%s" % (width, name, shape, err, rel,
                                                  "PASS" if ok else "FAIL",
                                                  "  (" + note + ")" if note else ""))
    if skipped:
        print("skipped (no PyTorch module of that name): %d: %s" % (
            len(skipped), " ".join(skipped[:20]) + (" ..." if len(skipped) > 20 else "")))
    if "main" not in files:
        print("note: no main.npy in the trace; the logits were not compared")
    worst = max(rows, key=lambda r: float("inf") if r[3] != r[3] else r[3], default=None)
    print("%d compared, %d passed, %d failed%s" % (
        len(rows), len(rows) - failures, failures,
        "; worst %s at %.3g" % (worst[0], worst[3]) if worst else ""))
    if not rows:
        print("compare_trace: nothing to compare in %s" % a.trace_dir, file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
