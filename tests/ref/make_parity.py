#!/usr/bin/env python3
"""
make_parity.py OUTDIR - generate PyTorch parity cases for the C engine.

Each case is a BlazeNeo variant with random (seeded) weights and non-trivial BatchNorm
statistics, a random input, the logits and the output of every traced module:

  OUTDIR/<case>/model.pth        torch.save(state_dict) (zip format, num_batches_tracked
                                 included; one case also holds the encoder.base.16 classifier)
  OUTDIR/<case>/input.npy        1x3xHxW float32, standard normal
  OUTDIR/<case>/main.npy         1xCxHxW float32 main logits at input resolution
  OUTDIR/<case>/aux.npy          1x1xHxW float32 auxiliary logits (auxiliary cases only)
  OUTDIR/<case>/case.json        {"aggregation", "auxiliary", "num_classes", "height", "width",
                                  "seed", "has_classifier", "modules": [paths in run order]}
  OUTDIR/<case>/modules/<module.path>.npy   1xCxhxw float32 output of that module
  OUTDIR/cases.txt               case names, one per line (written last)

Case names are <agg>_<aux|noaux>_c<classes>_<H>x<W> (height first), e.g. dha_aux_c3_64x64.
Re-running is a no-op when OUTDIR/cases.txt exists and OUTDIR/version.txt matches
SCRIPT_VERSION; concurrent runs serialise on OUTDIR/.lock.
"""
import fcntl
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blazeneo_ref as ref  # noqa: E402

SCRIPT_VERSION = "1"

# (aggregation, auxiliary, classes, height, width, with ImageNet classifier keys)
CASES = [
    ("LSC", False, 3, 64, 64, False),
    ("IDA", True, 3, 96, 64, False),
    ("DIA", False, 2, 64, 128, False),
    ("DHA", True, 3, 64, 64, True),
    ("DHA", False, 2, 96, 96, False),
    ("LSC", True, 2, 128, 64, False),
    ("IDA", False, 3, 64, 96, False),
    ("DIA", True, 3, 64, 64, False),
]


def case_name(agg, aux, classes, h, w):
    return "%s_%s_c%d_%dx%d" % (agg.lower(), "aux" if aux else "noaux", classes, h, w)


@torch.no_grad()
def randomise(model, seed):
    """Seeded random weights that keep activations O(1) through the whole network.

    Convolutions: N(0, gain^2 / fan_in) with gain sqrt(2) before a ReLU/ReLU6 and 1 for the
    purely linear convolutions (RFB branches 1-3 and the heads), so variance is roughly
    preserved layer to layer. BatchNorm: running_mean ~ N(0, 0.2), running_var ~ U(0.5, 2),
    weight ~ U(0.5, 1.5), bias ~ N(0, 0.2), so the engine's BN folding is really exercised.
    (N(0, s) means standard deviation s.)"""
    g = torch.Generator().manual_seed(seed)
    for name, m in model.named_modules():
        if isinstance(m, (ref.ConvLayer, ref.BasicConv)):
            conv = m.conv
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            activated = isinstance(m, ref.ConvLayer) or hasattr(m, "relu")
            std = math.sqrt((2.0 if activated else 1.0) / fan_in)
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * std)
            bn = getattr(m, "norm", None) or getattr(m, "bn", None)
            if bn is not None:
                c = bn.num_features
                bn.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                bn.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(c, generator=g) * 0.2)
                # Real checkpoints carry this int64 scalar; give it a plausible value.
                bn.num_batches_tracked.fill_(int(torch.randint(1, 100000, (1,), generator=g)))
        elif isinstance(m, nn.Linear):  # the never-run ImageNet classifier
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.01)
            m.bias.zero_()


def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def make_case(outdir, index, spec):
    agg, aux, classes, h, w, classifier = spec
    name = case_name(agg, aux, classes, h, w)
    seed = 1000 + index
    tmp = os.path.join(outdir, ".tmp-" + name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "modules"))

    model = ref.BlazeNeo(agg, aux, classes, with_classifier=classifier).eval()
    randomise(model, seed)
    torch.save(model.state_dict(), os.path.join(tmp, "model.pth"))

    x = np.random.default_rng(seed).standard_normal((1, 3, h, w)).astype(np.float32)
    out, rec = ref.capture_module_outputs(model, torch.from_numpy(x))
    auxo, main = out if aux else (None, out)

    save_npy(os.path.join(tmp, "input.npy"), x)
    save_npy(os.path.join(tmp, "main.npy"), main.numpy())
    if aux:
        save_npy(os.path.join(tmp, "aux.npy"), auxo.numpy())
    for path, a in rec.items():
        save_npy(os.path.join(tmp, "modules", path + ".npy"), a)

    # Sanity: the comparison tolerance is relative to the output range, so it must be real.
    m = main.numpy()
    assert np.isfinite(m).all(), name
    rng = float(m.max() - m.min())
    assert 0.5 < rng < 1e3, "%s: main logits range %g is degenerate" % (name, rng)

    meta = dict(aggregation=agg, auxiliary=aux, num_classes=classes, height=h, width=w,
                seed=seed, has_classifier=classifier, modules=list(rec.keys()))
    with open(os.path.join(tmp, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)

    final = os.path.join(outdir, name)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    ranges = "main [%.3f, %.3f]" % (m.min(), m.max())
    if aux:
        ranges += ", aux [%.3f, %.3f]" % (auxo.min(), auxo.max())
    return name, ranges, len(rec)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    cases_txt = os.path.join(outdir, "cases.txt")
    version_txt = os.path.join(outdir, "version.txt")

    with open(os.path.join(outdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # another run (ctest -j) waits, then skips
        try:
            with open(version_txt) as f:
                same = f.read().strip() == SCRIPT_VERSION
        except OSError:
            same = False
        if same and os.path.exists(cases_txt):
            print("make_parity: %s is up to date (version %s)" % (outdir, SCRIPT_VERSION))
            return 0
        if os.path.exists(cases_txt):
            os.remove(cases_txt)
        with open(version_txt, "w") as f:
            f.write(SCRIPT_VERSION + "\n")

        torch.set_num_threads(2)
        t0 = time.time()
        names = []
        for i, spec in enumerate(CASES):
            name, ranges, nmod = make_case(outdir, i, spec)
            names.append(name)
            print("%-22s %3d modules  %s" % (name, nmod, ranges))
        with open(cases_txt + ".tmp", "w") as f:
            f.write("".join(n + "\n" for n in names))
        os.rename(cases_txt + ".tmp", cases_txt)
        print("make_parity: %d cases in %.1f s -> %s" % (len(names), time.time() - t0, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
