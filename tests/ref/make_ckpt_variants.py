#!/usr/bin/env python3
"""
make_ckpt_variants.py OUTDIR - one BlazeNeo state dict saved in every layout the converter
accepts, and in layouts it must refuse, for tests/test_ckpt.c.

The model is BlazeNeo DHA with the auxiliary branch and 3 classes (the shipped variant), with
the seeded random weights and BatchNorm statistics of make_parity.py, every float rounded to
a bfloat16 value so that the bf16 copy holds exactly the same numbers. Each file below
converts to exactly the same weight file as plain.pth:

  OUTDIR/plain.pth                  torch.save(model.state_dict())
  OUTDIR/module_prefix.pth          every key "module." + key (nn.DataParallel)
  OUTDIR/wrap_state_dict.pth        {"epoch", "optimizer": {...}, "state_dict": sd}
  OUTDIR/wrap_model.pth             {"model": sd, "iteration"}
  OUTDIR/wrap_model_state_dict.pth  {"model_state_dict": sd, "epoch"}
  OUTDIR/f64.pth                    every float tensor .double()
  OUTDIR/bf16.pth                   every float tensor .bfloat16()
  OUTDIR/noncontig.pth              every float tensor a non-contiguous view: 4-D weights
                                    transposed in memory, some with a step of 2, 1-D
                                    tensors slices at an offset of a storage shared by
                                    the BatchNorm's four vectors

and these must be refused (tests/test_ckpt.c checks the messages):

  OUTDIR/legacy.pth                 torch.save(sd, _use_new_zipfile_serialization=False)
  OUTDIR/full_model.pth             torch.save(model): a pickled blazeneo_ref.BlazeNeo
  OUTDIR/wrap_full_model.pth        torch.save({"model": model, "epoch"})
  OUTDIR/nan.pth                    rfb4.branch1.1.conv.weight[3, 0, 1, 1] = NaN
  OUTDIR/wrong_shape.pth            rfb4.branch1.1.conv.weight [32, 31, 3, 3] (one input
                                    channel short of [32, 32, 3, 3])

About 1 GB and 15 s. Re-running is a no-op while OUTDIR/version.txt matches SCRIPT_VERSION
(bump it when you change the files); concurrent runs serialise on OUTDIR/.lock.
"""
import fcntl
import os
import sys

SCRIPT_VERSION = "1"

HERE = os.path.dirname(os.path.abspath(__file__))

FILES = ["plain", "module_prefix", "wrap_state_dict", "wrap_model", "wrap_model_state_dict", "f64", "bf16",
         "noncontig", "legacy", "full_model", "wrap_full_model", "nan", "wrong_shape"]


def noncontiguous(sd, torch):
    """The same values, each float tensor a strided or offset view of a larger storage."""
    out = type(sd)()
    groups = {}  # BatchNorm prefix -> its 1-D tensors, to share one storage
    for k, v in sd.items():
        if v.is_floating_point() and v.dim() == 1:
            groups.setdefault(k.rsplit(".", 1)[0], []).append(k)
    shared = {}
    for prefix, keys in groups.items():
        flat = torch.cat([torch.zeros(3)] + [sd[k] for k in keys])  # offset 3 for the first one
        at = 3
        for k in keys:
            n = sd[k].numel()
            shared[k] = flat[at:at + n]
            at += n
    for i, (k, v) in enumerate(sd.items()):
        if not v.is_floating_point():
            out[k] = v
        elif k in shared:
            out[k] = shared[k]
        elif v.dim() == 4 and i % 3 == 0 and v.numel() <= 50000:  # every other element of a storage twice as large
            out[k] = torch.stack([v, torch.zeros_like(v)], dim=-1)[..., 0]
        elif v.dim() >= 2:  # the dimensions reversed in memory
            dims = list(range(v.dim()))[::-1]
            out[k] = v.permute(*dims).contiguous().permute(*dims)
        else:
            out[k] = v
        assert torch.equal(out[k], v), k
        if v.numel() > 1 and v.dim() >= 2:
            assert not out[k].is_contiguous(), k
    return out


def generate(outdir):
    import collections
    import torch

    sys.path.insert(0, HERE)
    import blazeneo_ref as ref
    import make_parity

    torch.set_num_threads(2)
    model = ref.BlazeNeo("DHA", True, 3).eval()
    make_parity.randomise(model, 4242)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.bfloat16().float())
    sd = model.state_dict()

    def save(obj, name, **kw):
        tmp = os.path.join(outdir, ".tmp-" + name + ".pth")
        torch.save(obj, tmp, **kw)
        os.rename(tmp, os.path.join(outdir, name + ".pth"))

    def floats(fn):
        return collections.OrderedDict((k, fn(v) if v.is_floating_point() else v) for k, v in sd.items())

    save(sd, "plain")
    save(collections.OrderedDict(("module." + k, v) for k, v in sd.items()), "module_prefix")
    save({"epoch": 7, "best_dice": 0.84, "state_dict": sd,
          "optimizer": {"state": {0: {"exp_avg": torch.ones(2, 2)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}},
         "wrap_state_dict")
    save({"model": sd, "iteration": 1000}, "wrap_model")
    save({"model_state_dict": sd, "epoch": 7}, "wrap_model_state_dict")
    save(floats(lambda v: v.double()), "f64")
    save(floats(lambda v: v.bfloat16()), "bf16")
    save(noncontiguous(sd, torch), "noncontig")

    save(sd, "legacy", _use_new_zipfile_serialization=False)
    save(model, "full_model")
    save({"model": model, "epoch": 7}, "wrap_full_model")
    bad = collections.OrderedDict(sd)
    name = "rfb4.branch1.1.conv.weight"
    assert list(sd[name].shape) == [32, 32, 3, 3]
    bad[name] = sd[name].clone()
    bad[name][3, 0, 1, 1] = float("nan")
    save(bad, "nan")
    bad[name] = sd[name][:, :31].clone()
    save(bad, "wrong_shape")


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    version_txt = os.path.join(outdir, "version.txt")
    with open(os.path.join(outdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run (ctest -j) waits, then finds it done
        try:
            with open(version_txt) as f:
                same = f.read().strip() == SCRIPT_VERSION
        except OSError:
            same = False
        if same and all(os.path.exists(os.path.join(outdir, n + ".pth")) for n in FILES):
            return 0
        if os.path.exists(version_txt):
            os.remove(version_txt)
        generate(outdir)
        with open(version_txt, "w") as f:
            f.write(SCRIPT_VERSION + "\n")
        print("make_ckpt_variants: %d checkpoints -> %s" % (len(FILES), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
