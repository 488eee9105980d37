#!/usr/bin/env python3
"""
pil_resize.py IMAGE W H OUT.raw - the spec's resize, done by PIL, as raw bytes.

Writes Image.open(IMAGE).convert("RGB").resize((W, H), Image.BILINEAR) as W*H*3 bytes,
rows top to bottom, RGB interleaved, no header. The C tests compare bzn_resize_bilinear
against this file (within 1 grey level). PIL's BILINEAR is a triangle filter whose support
grows with the shrink factor, i.e. it antialiases when shrinking.
"""
import sys

from PIL import Image


def main(argv):
    if len(argv) != 5:
        print("usage: pil_resize.py IMAGE W H OUT.raw", file=sys.stderr)
        return 2
    w, h = int(argv[2]), int(argv[3])
    if w <= 0 or h <= 0:
        print("pil_resize: W and H must be positive", file=sys.stderr)
        return 2
    img = Image.open(argv[1]).convert("RGB").resize((w, h), Image.BILINEAR)
    data = img.tobytes()
    assert len(data) == w * h * 3
    with open(argv[4], "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
