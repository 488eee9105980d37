#!/usr/bin/env python3
"""
eval_ref.py MODEL.pth IMAGES_DIR MASKS_DIR [--size 352] [--threads 2] [--nearest pil|floor]

The spec's accuracy protocol in PyTorch ("Pre- and post-processing", "Accuracy metrics"):

  for every image (sorted by name) with a mask of the same file name:
    1. PIL decode, RGB, PIL bilinear resize to size x size, normalise (blazeneo_ref.preprocess)
    2. run the network, main head only; class per pixel (argmax, or the 2-class sigmoid rule)
    3. resize the class map to the mask's size by nearest neighbour
    4. ground truth from the colour JPEG mask: neoplastic R>=128 & G<128,
       non-neoplastic G>=128 & R<128, anything else background
  then micro-averaged (pixel counts summed over the whole set) Dice and IoU for
  seg (polyp = neo or non), neo and non:  Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN).

Nearest neighbour: --nearest pil (default) is PIL's Image.resize(NEAREST) on the uint8 class
map. PIL computes source indices by accumulating in double precision,
    s = in / out;  x = s / 2;  for dst = 0, 1, ...: src = (int) x;  x += s;
which is floor((dst + 0.5) * s) except that exact ties (e.g. 352 -> 995, dst 497) can land one
below, because of the accumulated rounding. --nearest floor is src = floor(dst * in / out)
(OpenCV INTER_NEAREST). With the shipped checkpoint the two differ by <= 0.001 in every
figure; the README's figures are the pil ones. Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blazeneo_ref as ref  # noqa: E402

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def resize_nearest(cls, width, height, mode):
    """Class map (h x w uint8) to height x width by nearest neighbour."""
    if mode == "pil":   # (same result as pil_nearest_index() below, used on rows and columns)
        return np.asarray(Image.fromarray(cls).resize((width, height), Image.NEAREST))
    h, w = cls.shape
    ys = (np.arange(height) * h) // height      # floor(dst * in / out), exact in integers
    xs = (np.arange(width) * w) // width
    return cls[ys[:, None], xs[None, :]]


def pil_nearest_index(n_in, n_out):
    """Source index per destination index exactly as PIL's NEAREST resize computes it
    (documentation for the C engine; checked against PIL for many sizes)."""
    s, x, idx = n_in / n_out, n_in / n_out * 0.5, []
    for _ in range(n_out):
        idx.append(int(x))
        x += s
    return np.array(idx)


def ground_truth(mask_path):
    """0 neoplastic, 1 non-neoplastic, 2 background, from a colour JPEG mask."""
    m = np.asarray(Image.open(mask_path).convert("RGB"))
    r, g = m[..., 0], m[..., 1]
    gt = np.full(r.shape, 2, np.uint8)
    gt[(r >= 128) & (g < 128)] = 0
    gt[(g >= 128) & (r < 128)] = 1
    return gt


def find_mask(masks_dir, image_name):
    stem = os.path.splitext(image_name)[0]
    for cand in [image_name] + [stem + e for e in IMAGE_EXTS]:
        p = os.path.join(masks_dir, cand)
        if os.path.exists(p):
            return p
    return None


def add_counts(counts, pred, gt):
    """Add one image's TP/FP/FN to counts[c] = [TP, FP, FN] for c in seg, neo, non
    (classes: 0 neo, 1 non, 2 background)."""
    for c, p, g in (("seg", pred <= 1, gt <= 1), ("neo", pred == 0, gt == 0),
                    ("non", pred == 1, gt == 1)):
        tp = int(np.count_nonzero(p & g))
        counts[c][0] += tp
        counts[c][1] += int(np.count_nonzero(p)) - tp
        counts[c][2] += int(np.count_nonzero(g)) - tp


def scores(tp, fp, fn):
    dice = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    iou = tp / (tp + fp + fn) if (tp + fp + fn) else float("nan")
    return dice, iou


def main():
    ap = argparse.ArgumentParser(description="BlazeNeo accuracy protocol in PyTorch")
    ap.add_argument("model")
    ap.add_argument("images_dir")
    ap.add_argument("masks_dir")
    ap.add_argument("--size", type=int, default=352, help="network input size (square)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nearest", choices=("pil", "floor"), default="pil")
    a = ap.parse_args()
    if a.size % 32:
        ap.error("--size must be a multiple of 32")

    torch.set_num_threads(a.threads)
    model = ref.load_checkpoint(a.model, auxiliary=False)   # main head only
    names = sorted(n for n in os.listdir(a.images_dir) if n.lower().endswith(IMAGE_EXTS))
    # counts[c] = [TP, FP, FN] for c in seg, neo, non (Python ints: no overflow)
    counts = {c: [0, 0, 0] for c in ("seg", "neo", "non")}
    used, t0 = 0, time.time()
    for name in names:
        mask_path = find_mask(a.masks_dir, name)
        if mask_path is None:
            print("eval_ref: no mask for %s, skipped" % name, file=sys.stderr)
            continue
        gt = ground_truth(mask_path)
        x = ref.preprocess(os.path.join(a.images_dir, name), (a.size, a.size))
        with torch.no_grad():
            cls = ref.classes_from_logits(model(x))[0]
        pred = resize_nearest(cls, gt.shape[1], gt.shape[0], a.nearest)
        add_counts(counts, pred, gt)
        used += 1

    result = {"images": used, "size": a.size, "nearest": a.nearest,
              "model": os.path.basename(a.model), "seconds": round(time.time() - t0, 1)}
    for c in ("seg", "neo", "non"):
        d, i = scores(*counts[c])
        result["dice_" + c] = round(d, 4)
        result["iou_" + c] = round(i, 4)
    result["counts"] = {c: dict(zip(("tp", "fp", "fn"), v)) for c, v in counts.items()}
    print(json.dumps(result, indent=1))
    return 0 if used else 1


if __name__ == "__main__":
    sys.exit(main())
