#!/usr/bin/env python3
"""
blazeneo_ref.py - an independent PyTorch re-implementation of BlazeNeo.

Written from ../../shared/spec/blazeneo-architecture.md, NOT copied from the authors' code.
Only the module names/paths follow the authors' code (tofuai/blazeneo, models/blazeneo/),
because they are what the state-dict keys of real checkpoints spell:

    encoder.base.N.{conv,norm}                        HarDNet-68 ConvLayer
    encoder.base.N.layers.J.{conv,norm}               layer J+1 of a HarDBlock
    encoder.base.16.3.{weight,bias}                   ImageNet classifier (never run)
    rfbK.branchB.J.conv, rfbK.branch0.0.bn, rfbK.conv_cat.{conv,bn}
    agg1/agg2.block_XY.J.{conv,bn}                    aggregation blocks
    head_1/head_2.head.conv                           3x3 prediction convolutions

This module is the yardstick for the C engine (tests/ref/compare_trace.py, make_parity.py,
eval_ref.py, bench/pytorch_bench.py all import it). Public API:

    BlazeNeo(aggregation="DHA", auxiliary=True, num_classes=3, with_classifier=False)
    load_checkpoint(path, auxiliary=None, threads=None) -> BlazeNeo in eval mode
    inspect_state_dict(sd) -> dict(aggregation, auxiliary, num_classes, has_classifier)
    preprocess(path_or_pil, size=(H, W)) -> 1x3xHxW float32 tensor
    classes_from_logits(main_logits) -> uint8 numpy class map (0 neo, 1 non, 2 background)
    capture_module_outputs(model, x) -> (outputs, {module path: numpy array})
    count_parameters(model, main_only=True)
"""
import collections

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
AGGREGATIONS = ("LSC", "IDA", "DIA", "DHA")


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

class Upsample(nn.Module):
    """Bilinear resize by an integer factor, align_corners=False.

    With scale_factor given (and no recompute), PyTorch maps destination pixel d to source
    coordinate (d + 0.5) / f - 0.5, clamped below at 0 -- the spec's up(x, f)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def extra_repr(self):
        return "factor=%d" % self.factor


class ConvLayer(nn.Module):
    """HarDNet's unit: conv(k, stride, pad k//2, no bias) -> BatchNorm -> ReLU6.
    Sub-module names conv/norm/relu give the keys encoder.base.N.conv.weight, ...norm.*"""

    def __init__(self, cin, cout, kernel=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU6(inplace=False)  # not in-place: hooks keep every tensor intact

    def forward(self, x):
        return self.relu(self.norm(self.conv(x)))


class BasicConv(nn.Module):
    """Decoder unit: conv (no bias) -> optional BatchNorm ('bn') -> optional ReLU.
    When bn/relu are off the sub-module simply does not exist (no keys)."""

    def __init__(self, cin, cout, kernel, padding=0, dilation=1, bn=True, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=1, padding=padding,
                              dilation=dilation, bias=False)
        if bn:
            self.bn = nn.BatchNorm2d(cout)
        if relu:
            self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        if hasattr(self, "relu"):
            x = self.relu(x)
        return x


# --------------------------------------------------------------------------------------
# Encoder: HarDNet-68
# --------------------------------------------------------------------------------------

def hardblock_layer(l, cin, growth, grmul=1.7):
    """Links and output width of layer l (1-based) of a HarDBlock, per the spec.

    Returns (links, width). links are layer indices (0 = block input), in link order:
    l-1, l-2, l-4, ... for every power of two 2^i dividing l."""
    links = []
    w = float(growth)
    for i in range(10):
        step = 2 ** i
        if l % step == 0 and l - step >= 0:
            links.append(l - step)
            if i >= 1:
                w *= grmul
    width = int(int(w + 1) / 2) * 2
    return links, width


class HarDBlock(nn.Module):
    """Harmonic densely connected block (keys: encoder.base.N.layers.{l-1}.*)."""

    def __init__(self, cin, growth, n_layers, grmul=1.7):
        super().__init__()
        widths = [cin]               # widths[l] = output width of layer l (0 = block input)
        self.links = []              # self.links[l-1] = links of layer l
        layers = []
        for l in range(1, n_layers + 1):
            links, w = hardblock_layer(l, cin, growth, grmul)
            layers.append(ConvLayer(sum(widths[j] for j in links), w, 3))
            self.links.append(links)
            widths.append(w)
        self.layers = nn.ModuleList(layers)
        # Kept outputs: odd layers and the last one, in increasing order (not the input).
        self.kept = [l for l in range(1, n_layers + 1) if l % 2 == 1 or l == n_layers]
        self.out_channels = sum(widths[l] for l in self.kept)

    def forward(self, x):
        outs = [x]
        for l, layer in enumerate(self.layers, start=1):
            ins = [outs[j] for j in self.links[l - 1]]
            outs.append(layer(ins[0] if len(ins) == 1 else torch.cat(ins, 1)))
        return torch.cat([outs[l] for l in self.kept], 1)


class Classifier(nn.Sequential):
    """HarDNet's ImageNet head, encoder.base.16 = (avgpool, flatten, dropout, linear).
    Only the Linear at index 3 has weights. Present to load checkpoints strictly; never run."""

    def __init__(self, cin=1024, n=1000):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(cin, n))


class HarDNet68(nn.Module):
    """HarDNet-68 backbone as a flat ModuleList `base`; forward returns (f3, f4, f5)."""

    # (growth, layers, transition width, max-pool after the transition?)
    STAGES = [(14, 8, 128, True), (16, 16, 256, False), (20, 16, 320, True),
              (40, 16, 640, True), (160, 4, 1024, False)]

    def __init__(self, with_classifier=False):
        super().__init__()
        base = [ConvLayer(3, 32, 3, stride=2),                   # 0
                ConvLayer(32, 64, 3),                            # 1
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]  # 2
        ch = 64
        for growth, n, width, pool in self.STAGES:
            block = HarDBlock(ch, growth, n)
            base += [block, ConvLayer(block.out_channels, width, 1)]
            if pool:
                base.append(nn.MaxPool2d(kernel_size=2, stride=2))
            ch = width
        assert len(base) == 16
        if with_classifier:
            base.append(Classifier(1024, 1000))                 # 16
        self.base = nn.ModuleList(base)

    def forward(self, x):
        feats = {}
        for i in range(16):           # index 16 (classifier) is never run
            x = self.base[i](x)
            if i in (9, 12, 15):
                feats[i] = x
        return feats[9], feats[12], feats[15]


# --------------------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------------------

class RFBblock(nn.Module):
    """Receptive-field block: four branches (1-3 purely linear) -> cat -> 1x1 conv+BN+ReLU."""

    def __init__(self, cin, cout=32):
        super().__init__()
        lin = dict(bn=False, relu=False)
        self.branch0 = nn.Sequential(BasicConv(cin, cout, 1))
        self.branch1 = nn.Sequential(BasicConv(cin, cout, 1, **lin),
                                     BasicConv(cout, cout, 3, padding=1, **lin))
        self.branch2 = nn.Sequential(BasicConv(cin, cout, 1, **lin),
                                     BasicConv(cout, cout, 3, padding=1, **lin),
                                     BasicConv(cout, cout, 3, padding=3, dilation=3, **lin))
        self.branch3 = nn.Sequential(BasicConv(cin, cout, 1, **lin),
                                     BasicConv(cout, cout, 5, padding=2, **lin),
                                     BasicConv(cout, cout, 3, padding=5, dilation=5, **lin))
        self.conv_cat = BasicConv(4 * cout, cout, 1)

    def forward(self, x):
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        return self.conv_cat(torch.cat(branches, 1))


def agg_block(cin, c=32):
    """block_XY: two 3x3 BasicConvs with BN and ReLU."""
    return nn.Sequential(BasicConv(cin, c, 3, padding=1), BasicConv(c, c, 3, padding=1))


def up_module(factor):
    # The authors wrap each upsample in a Sequential; names agg.upsample_K.0 follow that.
    return nn.Sequential(Upsample(factor))


class Aggregation(nn.Module):
    """The four partial decoders of the paper, one class. x1 = rfb5 (H/32),
    x2 = rfb4 (H/16), x3 = rfb3 (H/8); the output is 32 x H/8.

    Upsample module names follow the authors (LSC has upsample_1 and upsample_3 only,
    DHA up to upsample_5); they hold no weights, they only name trace files."""

    def __init__(self, kind, c=32):
        super().__init__()
        assert kind in AGGREGATIONS, kind
        self.kind = kind
        self.upsample_1 = up_module(2)          # x1 -> H/16, for block_22
        if kind != "LSC":
            self.upsample_2 = up_module(2)      # x2 -> H/8, for block_23
        self.upsample_3 = up_module(2)          # x22 -> H/8, for block_33
        if kind == "DHA":
            self.upsample_4 = up_module(2)      # x22 -> H/8 again, for block_32
            self.upsample_5 = up_module(4)      # x1 -> H/8, for block_31
        self.block_22 = agg_block(2 * c, c)
        if kind != "LSC":
            self.block_23 = agg_block(2 * c, c)
        self.block_33 = agg_block((3 if kind in ("DIA", "DHA") else 2) * c, c)
        if kind == "DHA":
            self.block_32 = agg_block(2 * c, c)
            self.block_31 = agg_block(2 * c, c)

    def forward(self, x1, x2, x3):
        x22 = self.block_22(torch.cat([self.upsample_1(x1), x2], 1))
        if self.kind == "LSC":
            return self.block_33(torch.cat([self.upsample_3(x22), x3], 1))
        x23 = self.block_23(torch.cat([self.upsample_2(x2), x3], 1))
        if self.kind == "IDA":
            return self.block_33(torch.cat([self.upsample_3(x22), x23], 1))
        x33 = self.block_33(torch.cat([self.upsample_3(x22), x23, x3], 1))
        if self.kind == "DIA":
            return x33
        x32 = self.block_32(torch.cat([self.upsample_4(x22), x33], 1))
        return self.block_31(torch.cat([self.upsample_5(x1), x32], 1))


class Head(nn.Module):
    """3x3 conv, no bias/BN/ReLU (key X.head.conv.weight)."""

    def __init__(self, cin, n):
        super().__init__()
        self.head = BasicConv(cin, n, 3, padding=1, bn=False, relu=False)

    def forward(self, x):
        return self.head(x)


class BlazeNeo(nn.Module):
    """BlazeNeo. forward(x) returns (aux_logits, main_logits) at input resolution when
    auxiliary, else main_logits only. aux has 1 channel (polyp), main num_classes."""

    def __init__(self, aggregation="DHA", auxiliary=True, num_classes=3, with_classifier=False):
        super().__init__()
        assert aggregation in AGGREGATIONS, aggregation
        assert num_classes in (2, 3), num_classes
        self.aggregation = aggregation
        self.auxiliary = auxiliary
        self.num_classes = num_classes
        self.encoder = HarDNet68(with_classifier)
        self.rfb3 = RFBblock(320, 32)
        self.rfb4 = RFBblock(640, 32)
        self.rfb5 = RFBblock(1024, 32)
        if auxiliary:                       # created before agg2, as in the authors' code
            self.agg1 = Aggregation("DHA")  # the auxiliary branch is always DHA
            self.head_1 = Head(32, 1)
            self.upsample_1 = Upsample(8)
        self.agg2 = Aggregation(aggregation)
        self.head_2 = Head(32, num_classes)
        self.upsample_2 = Upsample(8)

    def forward(self, x):
        f3, f4, f5 = self.encoder(x)
        x3, x4, x5 = self.rfb3(f3), self.rfb4(f4), self.rfb5(f5)
        main = self.upsample_2(self.head_2(self.agg2(x5, x4, x3)))
        if not self.auxiliary:
            return main
        aux = self.upsample_1(self.head_1(self.agg1(x5, x4, x3)))
        return aux, main


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------

def unwrap_state_dict(obj):
    """Accept a bare state dict or the usual wrappers; strip a DataParallel 'module.' prefix."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    sd = collections.OrderedDict()
    for k, v in obj.items():
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    return sd


def inspect_state_dict(sd):
    """Recognise the variant from the keys and shapes (spec, 'Aggregation' and 'Heads')."""
    if "agg2.block_23.0.conv.weight" not in sd:
        agg = "LSC"
    elif "agg2.block_32.0.conv.weight" in sd:
        agg = "DHA"
    else:
        cin = sd["agg2.block_33.0.conv.weight"].shape[1]
        agg = {64: "IDA", 96: "DIA"}[int(cin)]
    return dict(
        aggregation=agg,
        auxiliary=any(k.startswith(("agg1.", "head_1.")) for k in sd),
        num_classes=int(sd["head_2.head.conv.weight"].shape[0]),
        has_classifier=any(k.startswith("encoder.base.16.") for k in sd),
    )


def load_checkpoint(path, auxiliary=None, threads=None):
    """Build the right variant for a checkpoint and load it with strict=True.

    auxiliary=None keeps what the checkpoint has; auxiliary=False builds the main path only
    and drops the agg1/head_1 keys (cheaper inference, identical main output). The ImageNet
    classifier is built when the checkpoint has it, so strict loading covers every key."""
    if threads:
        torch.set_num_threads(threads)
    sd = unwrap_state_dict(torch.load(path, map_location="cpu"))
    info = inspect_state_dict(sd)
    if auxiliary is None:
        auxiliary = info["auxiliary"]
    if auxiliary and not info["auxiliary"]:
        raise ValueError("%s has no auxiliary branch" % path)
    if not auxiliary:
        sd = collections.OrderedDict((k, v) for k, v in sd.items()
                                     if not k.startswith(("agg1.", "head_1.")))
    model = BlazeNeo(info["aggregation"], auxiliary, info["num_classes"],
                     with_classifier=info["has_classifier"])
    model.load_state_dict(sd, strict=True)
    return model.eval()


def count_parameters(model, main_only=True):
    """Parameters (not BN running statistics), never counting the ImageNet classifier;
    main_only also leaves out the auxiliary branch (agg1, head_1)."""
    n = 0
    for name, p in model.named_parameters():
        if name.startswith("encoder.base.16."):
            continue
        if main_only and name.startswith(("agg1.", "head_1.")):
            continue
        n += p.numel()
    return n


# --------------------------------------------------------------------------------------
# Pre- and post-processing (spec, "Pre- and post-processing")
# --------------------------------------------------------------------------------------

def preprocess(image, size=(352, 352)):
    """PIL decode -> RGB -> PIL bilinear resize (antialiased) -> /255 -> normalise.
    image: a path or a PIL image; size: (H, W). Returns a 1x3xHxW float32 tensor."""
    from PIL import Image
    img = image if isinstance(image, Image.Image) else Image.open(image)
    h, w = size
    img = img.convert("RGB").resize((w, h), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32))


def classes_from_logits(main):
    """Class per pixel from main logits (NxCxHxW or CxHxW tensor/array):
    0 neoplastic, 1 non-neoplastic, 2 background. Returns uint8 numpy (N)xHxW.

    C = 3: argmax over channels (first maximum wins on ties, like torch.argmax).
    C = 2: two sigmoid maps (neo, non); polyp where max(sigmoid) > 0.5, then neoplastic
    where p_neo >= p_non, else non-neoplastic; background elsewhere."""
    t = torch.as_tensor(main)
    squeeze = t.dim() == 3
    if squeeze:
        t = t[None]
    if t.shape[1] == 3:
        cls = torch.argmax(t, dim=1)
    elif t.shape[1] == 2:
        p = torch.sigmoid(t.float())
        polyp = torch.maximum(p[:, 0], p[:, 1]) > 0.5
        cls = torch.where(p[:, 0] >= p[:, 1], 0, 1)
        cls = torch.where(polyp, cls, torch.full_like(cls, 2))
    else:
        raise ValueError("main logits need 2 or 3 channels, got %d" % t.shape[1])
    cls = cls.to(torch.uint8).numpy()
    return cls[0] if squeeze else cls


# --------------------------------------------------------------------------------------
# Per-module outputs (for parity files and trace auditing)
# --------------------------------------------------------------------------------------

def traced_modules(model):
    """(path, module) pairs whose outputs are recorded: every named module except the inner
    conv/norm/bn/relu layers of a ConvLayer/BasicConv, the model itself, the encoder (which
    returns a tuple), the ModuleList encoder.base and the never-run classifier."""
    inner = set()
    for name, m in model.named_modules():
        if isinstance(m, (ConvLayer, BasicConv)):
            for sub, _ in m.named_children():
                inner.add(name + "." + sub)
    out = []
    for name, m in model.named_modules():
        if name in ("", "encoder", "encoder.base") or name in inner:
            continue
        if name.startswith("encoder.base.16") or isinstance(m, nn.ModuleList):
            continue
        out.append((name, m))
    return out


@torch.no_grad()
def capture_module_outputs(model, x):
    """Run model(x) with forward hooks. Returns (model output, OrderedDict path -> float32
    numpy array of that module's output), in execution order."""
    rec = collections.OrderedDict()
    handles = []

    def hook_for(name):
        def hook(_module, _inputs, output):
            if torch.is_tensor(output):
                rec[name] = output.detach().float().clone().numpy()
        return hook

    for name, m in traced_modules(model):
        handles.append(m.register_forward_hook(hook_for(name)))
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, rec


if __name__ == "__main__":
    # Self-check against the shipped checkpoint: strict load and parameter counts.
    import os
    import sys
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "models",
        "blazeneo-dha-neopolyp-small.pth")
    m = load_checkpoint(path)
    print("variant:", m.aggregation, "aux" if m.auxiliary else "noaux", m.num_classes, "classes")
    print("parameters, main path:", count_parameters(m, True))
    print("parameters, with aux: ", count_parameters(m, False))
