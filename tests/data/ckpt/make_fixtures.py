#!/usr/bin/python3
"""Make the small checkpoint fixtures of tests/test_ckpt.c.

Run with Debian's Python, which has torch 1.13 (the `python3` on PATH may not):
    /usr/bin/python3 tests/data/ckpt/make_fixtures.py

Every value is a simple formula so that the C test can recompute it (see test_ckpt.c).
Two kinds of files are written:
  * real checkpoints, written by torch.save itself;
  * hand-made ones (odd zips, broken pickles), written by `write_ckpt` below, which lays
    out a zip exactly like torch.save does (<folder>/data.pkl, <folder>/data/<key>) but
    lets us put anything in the pickle or the storages.
The output is deterministic (running the script again gives the same bytes), except for
legacy.pth, whose storage keys are memory addresses: it is only written when missing.
"""
import argparse
import collections
import io
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def out(name):
    return os.path.join(HERE, name)


def torch_save(obj, name, folder=None, **kw):
    """torch.save(obj) into `name`; the zip folder is the file name's stem unless given."""
    folder = folder or os.path.splitext(name)[0]
    tmp = os.path.join("/tmp", folder + ".pth")
    torch.save(obj, tmp, **kw)
    with open(tmp, "rb") as f:
        data = f.read()
    os.remove(tmp)
    with open(out(name), "wb") as f:
        f.write(data)


# ---- a torch-like writer for hand-made checkpoints --------------------------------------

class FakeStorage:
    """A storage: pickled as torch's persistent id ('storage', type, key, 'cpu', numel)."""

    def __init__(self, storage_type, key, numel):
        self.pid = ("storage", storage_type, key, "cpu", numel)


class FakeTensor:
    """A tensor: pickled as a call of torch._utils._rebuild_tensor_v2 with any arguments."""

    def __init__(self, storage, offset, size, stride, fn=torch._utils._rebuild_tensor_v2):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.fn = fn

    def __reduce__(self):
        return (self.fn, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, FakeStorage) else None


def dumps(obj, protocol=2):
    f = io.BytesIO()
    Pickler(f, protocol=protocol).dump(obj)
    return f.getvalue()


def write_zip(name, entries, compression=zipfile.ZIP_STORED):
    """entries: list of (name, bytes); fixed timestamps keep the output deterministic."""
    with zipfile.ZipFile(out(name), "w") as z:
        for ename, data in entries:
            info = zipfile.ZipInfo(ename, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            z.writestr(info, data)


def write_ckpt(name, folder, pickle_bytes, storages, compression=zipfile.ZIP_STORED, extra=None):
    entries = [(folder + "/data.pkl", pickle_bytes)]
    entries += [(folder + "/data/" + k, v) for k, v in storages.items()]
    entries += [(folder + "/" + k, v) for k, v in (extra or {}).items()]
    entries.append((folder + "/version", b"3\n"))
    write_zip(name, entries, compression)


def float_storage(key, numel):
    return FakeStorage(torch.FloatStorage, key, numel)


def floats(values):
    return struct.pack("<%df" % len(values), *values)


# ---- Zip64: a zip whose central directory keeps sizes and offsets in Zip64 extra fields ----

def write_zip64(name, entries):
    """A zip where every size and offset of the central directory is 0xFFFFFFFF and the
    real values are in Zip64 extra fields, ended by Zip64 EOCD record + locator + EOCD."""
    body = io.BytesIO()
    central = io.BytesIO()
    for ename, data in entries:
        n = ename.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = body.tell()
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        body.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(n), len(local_extra)))
        body.write(n + local_extra + data)
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                                  0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra), 0, 0, 0, 0, 0xFFFFFFFF))
        central.write(n + extra)
    cd_offset = body.tell()
    cd = central.getvalue()
    count = len(entries)
    eocd64_offset = cd_offset + len(cd)
    eocd64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(out(name), "wb") as f:
        f.write(body.getvalue() + cd + eocd64 + locator + eocd)


# ---- the fixtures ---------------------------------------------------------------------------

class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 2)
        self.bn = torch.nn.BatchNorm2d(2)


def tiny_state_dict():
    """conv.weight[i] = (i - 12) / 4 over 24 elements, and small BatchNorm tensors."""
    m = Tiny()
    with torch.no_grad():
        m.conv.weight.copy_((torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) - 12) * 0.25)
        m.conv.bias.copy_(torch.tensor([0.5, -1.5]))
        m.bn.weight.copy_(torch.tensor([1.0, 2.0]))
        m.bn.bias.copy_(torch.tensor([-0.125, 0.125]))
        m.bn.running_mean.copy_(torch.tensor([0.25, -0.25]))
        m.bn.running_var.copy_(torch.tensor([1.5, 2.5]))
        m.bn.num_batches_tracked.fill_(1234567890123)
    return m.state_dict()  # an OrderedDict (with a _metadata attribute, saved by BUILD)


def small_state_dict():
    return collections.OrderedDict([
        ("a.weight", torch.tensor([[1.0, 2.0], [3.0, 4.0]])),
        ("a.bias", torch.tensor([-1.0, 1.0])),
    ])


def main():
    sd = tiny_state_dict()

    # 1. the plain state dict of a module
    torch_save(sd, "plain.pth")

    # 2. every storage type, a scalar, an empty tensor, a Parameter, non-tensor values
    dtypes = {
        "f16": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3).half(),
        "bf16": torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.bfloat16),
        "f64": torch.tensor([1.0 / 3.0, -2.5, 1e300], dtype=torch.float64),
        "i64": torch.tensor([-5, 2 ** 40, 7], dtype=torch.int64),
        "i32": torch.tensor([-2 ** 31, 2 ** 31 - 1], dtype=torch.int32),
        "u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.tensor([0.75, -0.75])),
        "meta_int": 42,
        "meta_str": "hello",
    }
    torch_save(dtypes, "dtypes.pth")

    # 3. training-checkpoint wrappers; the tensors elsewhere (optimizer) must be ignored
    torch_save({
        "epoch": 3,
        "best_dice": 0.84,
        "args": argparse.Namespace(lr=0.001, name="blazeneo"),
        "optimizer": {"state": {0: {"exp_avg": torch.ones(2, 2)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        "state_dict": small_state_dict(),
    }, "wrap_state_dict.pth")
    torch_save({"model": small_state_dict(), "iteration": 100}, "wrap_model.pth")
    torch_save({"model_state_dict": small_state_dict(), "epoch": 1}, "wrap_model_state_dict.pth")

    # 4. nn.DataParallel keys
    torch_save(collections.OrderedDict(("module." + k, v) for k, v in small_state_dict().items()),
               "module_prefix.pth")

    # 5. views saved as they are: transposed, sliced (storage offset), stepped, broadcast
    base = torch.arange(30, dtype=torch.float32)
    torch_save(collections.OrderedDict([
        ("base", base),                                            # storage of 30
        ("transposed", torch.arange(12, dtype=torch.float32).reshape(3, 4).t()),  # [4,3], stride (1,4)
        ("slice", base[5:11]),                                     # offset 5
        ("sub2d", base.reshape(5, 6)[1:4, 2:5]),                   # offset 8, stride (6,1)
        ("step", base[1::3]),                                      # offset 1, stride 3
        ("bcast", torch.arange(3, dtype=torch.float32).expand(2, 3)),  # stride (0,1)
        ("half_t", (torch.arange(6, dtype=torch.float32) * 0.25).reshape(2, 3).half().t()),
    ]), "strided.pth")

    # 6. a folder name that is not the usual file stem
    torch_save(small_state_dict(), "custom_folder.pth", folder="My-Model_v2.final")

    # 7. pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
    torch_save(small_state_dict(), "proto4.pth", pickle_protocol=4)

    # 8. Zip64 extra fields everywhere
    buf = io.BytesIO()
    torch.save(small_state_dict(), buf)
    with zipfile.ZipFile(buf) as z:
        entries = [(n.replace("archive/", "zip64/"), z.read(n)) for n in z.namelist()]
    write_zip64("zip64.pth", entries)

    # 9. rarer constructions: a tensor subclass (_rebuild_from_type_v2 wrapping
    #    _rebuild_tensor_v2) inside an OrderedDict built from a list of pairs
    class FromType(FakeTensor):
        def __reduce__(self):
            return (torch._tensor._rebuild_from_type_v2,
                    (torch._utils._rebuild_tensor_v2, torch.Tensor, self.args, {}))

    class PairsDict:
        def __init__(self, pairs):
            self.pairs = pairs

        def __reduce__(self):
            return (collections.OrderedDict, (self.pairs,))

    write_ckpt("from_type.pth", "ft", dumps(PairsDict([
        ("x", FromType(float_storage("0", 4), 1, [3], [1])),
        ("y", FakeTensor(float_storage("0", 4), 0, [2, 2], [1, 2])),
    ])), {"0": floats([0.5, 1.5, 2.5, 3.5])})

    # ---- broken ones ----
    with open(out("empty.pth"), "wb"):
        pass
    if not os.path.exists(out("legacy.pth")):  # its bytes differ on every run: keep the committed one
        torch_save(small_state_dict(), "legacy.pth", _use_new_zipfile_serialization=False)
    write_zip("deflate.pth", entries, compression=zipfile.ZIP_DEFLATED)

    # the persistent id says 6 floats, the entry has 5
    write_ckpt("bad_storage_size.pth", "bad", dumps({"w": FakeTensor(float_storage("0", 6), 0, [6], [1])}),
               {"0": floats(range(5))})
    # a [2,4] view with offset 1 reads element 8 of a 6-float storage
    write_ckpt("out_of_bounds.pth", "oob", dumps({"w": FakeTensor(float_storage("0", 6), 1, [2, 4], [4, 1])}),
               {"0": floats(range(6))})
    # strides whose extent overflows 64 bits
    write_ckpt("overflow.pth", "ovf",
               dumps({"w": FakeTensor(float_storage("0", 6), 0, [2 ** 40, 2 ** 40], [2 ** 40, 1])}),
               {"0": floats(range(6))})
    # the storage entry does not exist
    write_ckpt("missing_storage.pth", "miss", dumps({"w": FakeTensor(float_storage("7", 6), 0, [6], [1])}),
               {"0": floats(range(6))})
    # a quantized-tensor rebuild function
    write_ckpt("qtensor.pth", "q", dumps({"w": FakeTensor(float_storage("0", 6), 0, [6], [1],
                                                         fn=torch._utils._rebuild_qtensor)}),
               {"0": floats(range(6))})
    # views whose extent overflows int64 through the strides alone
    write_ckpt("stride_overflow.pth", "sovf",
               dumps({"w": FakeTensor(float_storage("0", 6), 0, [3, 2], [2 ** 62, 2 ** 62])}),
               {"0": floats(range(6))})
    # a 4 GiB broadcast view of one float: refused (memory is bounded by the file size)
    write_ckpt("broadcast_bomb.pth", "bomb",
               dumps({"w": FakeTensor(float_storage("0", 1), 0, [2 ** 20, 2 ** 10], [0, 0])}),
               {"0": floats([1.0])})
    # written on a big-endian machine (torch >= 2.1 records the byte order)
    write_ckpt("byteorder_big.pth", "be", dumps({"w": FakeTensor(float_storage("0", 1), 0, [1], [1])}),
               {"0": floats([1.0])}, extra={"byteorder": b"big"})
    # an opcode this VM does not run: INT ('I', protocol 0) at offset 11
    write_ckpt("bad_opcode.pth", "op", b"\x80\x02}q\x00X\x01\x00\x00\x00aI42\ns.", {})
    # a whole nn.Module instead of its state dict
    torch_save(Tiny(), "full_model.pth")
    # a pickle of a dict without tensors
    write_ckpt("no_tensors.pth", "none", dumps({"epoch": 3, "name": "x"}), {})

    # the fuzzing seeds: every fixture above (tests/fuzz/README.md)
    print("fixtures written to", HERE)
    for n in sorted(os.listdir(HERE)):
        if n.endswith(".pth"):
            print("  %-28s %6d bytes" % (n, os.path.getsize(out(n))))


if __name__ == "__main__":
    sys.exit(main())
