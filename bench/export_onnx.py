#!/usr/bin/env python3
"""
export_onnx.py [--pth MODEL.pth] [--size 352] [--opset 13] -o MODEL.onnx
               [--check-images IMG ... --check-dir DIR] [--bench-input FILE]

The network pytorch_bench.py times, exported with torch.onnx.export for ONNX Runtime: the
independent reference model (tests/ref/blazeneo_ref.py) loaded from the checkpoint, main path
only (no auxiliary agg1/head_1 branch), eval mode, batch 1, a fixed 1x3xSIZExSIZE float32
input named "input" and the main head's logits, 1x3xSIZExSIZE after the final 8x upsampling,
named "logits". torch.onnx.export folds every BatchNorm into its convolution (eval mode,
constant folding on), so the graph is Conv (+Clip for ReLU6 / Relu), Concat, MaxPool and
Resize (bilinear, half-pixel, as F.interpolate(align_corners=False) with a scale factor).

--check-images IMG... --check-dir DIR: also writes, for each image k (preprocessed as the
spec says, blazeneo_ref.preprocess), DIR/in_k.bin (the input tensor) and DIR/torch_k.bin
(PyTorch's logits on it), raw little-endian float32, so that another runtime's output can be
checked against PyTorch (ort_bench.js --check DIR).
--bench-input FILE: writes the input pytorch_bench.py times (torch.randn with seed 0) as raw
float32, so that ort_bench.js times the very same tensor.

Prints one JSON line: the file, its size, the opset, the node counts by operator.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
sys.path.insert(0, HERE)
import blazeneo_ref as ref  # noqa: E402
import onnx_proto  # noqa: E402

DEFAULT_PTH = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "models", "blazeneo-dha-neopolyp-small.pth"))


def main():
    ap = argparse.ArgumentParser(description="export BlazeNeo's main path to ONNX (torch.onnx.export)")
    ap.add_argument("--pth", default=DEFAULT_PTH, help="PyTorch checkpoint (default: %(default)s)")
    ap.add_argument("--size", type=int, default=352, help="input height = width (multiple of 32)")
    ap.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    ap.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    ap.add_argument("--check-images", nargs="*", default=[], help="images to write check tensors for")
    ap.add_argument("--check-dir", help="folder for in_k.bin / torch_k.bin")
    ap.add_argument("--bench-input", help="write pytorch_bench.py's timing input (randn, seed 0) here")
    a = ap.parse_args()
    if a.size <= 0 or a.size % 32:
        ap.error("--size must be a positive multiple of 32")
    if a.check_images and not a.check_dir:
        ap.error("--check-images needs --check-dir")

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = ref.load_checkpoint(a.pth, auxiliary=False)
    x = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    tmp = a.output + ".tmp%d" % os.getpid()
    with torch.no_grad():
        torch.onnx.export(model, (x,), tmp, opset_version=a.opset, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    os.replace(tmp, a.output)

    if a.bench_input:
        x.numpy().astype("<f4").tofile(a.bench_input)
    if a.check_images:
        os.makedirs(a.check_dir, exist_ok=True)
        with torch.no_grad():
            for k, path in enumerate(a.check_images):
                t = ref.preprocess(path, (a.size, a.size))
                t.numpy().astype("<f4").tofile(os.path.join(a.check_dir, "in_%d.bin" % k))
                model(t).numpy().astype("<f4").tofile(os.path.join(a.check_dir, "torch_%d.bin" % k))

    m = onnx_proto.load(a.output)
    g = onnx_proto.Msg(m.first(7))
    ops = {}
    for n in g.msgs(1):
        ops[n.string(4)] = ops.get(n.string(4), 0) + 1
    print(json.dumps({"onnx": os.path.abspath(a.output), "bytes": os.path.getsize(a.output), "opset": a.opset,
                      "size": a.size, "torch": torch.__version__, "pth": os.path.abspath(a.pth), "ops": ops,
                      "check_images": [os.path.abspath(p) for p in a.check_images]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
