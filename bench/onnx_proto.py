#!/usr/bin/env python3
"""
onnx_proto.py - just enough of the ONNX protobuf format to read, edit and write a model,
without the `onnx` or `protobuf` packages (standard library only; numpy where tensors are
converted).

Protocol buffers on the wire: a message is a sequence of (field number, wire type, value);
wire type 0 = varint, 1 = 8 bytes, 2 = length-delimited (bytes, strings, sub-messages, packed
repeated scalars), 5 = 4 bytes. `Msg` keeps every field it reads, in order, as raw values, so a
message written back without changes is byte-identical, and fields this module knows nothing
about (doc strings, metadata, training info, ...) survive an edit untouched.

Field numbers, from onnx/onnx.proto (IR version 8):
  ModelProto      ir_version 1, producer_name 2, producer_version 3, domain 4, model_version 5,
                  doc_string 6, graph 7, opset_import 8, metadata_props 14
  OperatorSetId   domain 1, version 2
  GraphProto      node 1, name 2, initializer 5, doc_string 10, input 11, output 12,
                  value_info 13
  NodeProto       input 1, output 2, name 3, op_type 4, attribute 5, doc_string 6, domain 7
  AttributeProto  name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, strings 9, tensors 10,
                  type 20 (FLOAT 1, INT 2, STRING 3, TENSOR 4, GRAPH 5, FLOATS 6, INTS 7)
  TensorProto     dims 1, data_type 2, float_data 4, int32_data 5, int64_data 7, name 8,
                  raw_data 9, double_data 10 (FLOAT 1, UINT8 2, INT8 3, INT32 6, INT64 7)
  ValueInfoProto  name 1, type 2;  TypeProto tensor_type 1;  TypeProto.Tensor elem_type 1,
                  shape 2;  TensorShapeProto dim 1;  Dimension dim_value 1, dim_param 2
"""
import struct

# TensorProto.DataType
FLOAT, UINT8, INT8, INT32, INT64 = 1, 2, 3, 6, 7
NUMPY_OF = {FLOAT: "<f4", UINT8: "u1", INT8: "i1", INT32: "<i4", INT64: "<i8", 11: "<f8"}
# AttributeProto.AttributeType
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_GRAPH, A_FLOATS, A_INTS = 1, 2, 3, 4, 5, 6, 7


def read_varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long at byte %d" % pos)


def varint(v):
    if v < 0:
        v += 1 << 64            # int64 fields: two's complement, 10 bytes
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


class Msg:
    """One protobuf message as a list of [field, wire type, value] (value: int for varints,
    bytes otherwise). Sub-messages are parsed on demand with Msg(bytes)."""

    def __init__(self, data=b""):
        self.fields = []
        buf = memoryview(data) if not isinstance(data, memoryview) else data
        pos, end = 0, len(buf)
        while pos < end:
            key, pos = read_varint(buf, pos)
            fno, wt = key >> 3, key & 7
            if wt == 0:
                val, pos = read_varint(buf, pos)
            elif wt == 2:
                n, pos = read_varint(buf, pos)
                if pos + n > end:
                    raise ValueError("field %d: %d bytes past the end" % (fno, pos + n - end))
                val = bytes(buf[pos:pos + n])
                pos += n
            elif wt == 1:
                val = bytes(buf[pos:pos + 8])
                pos += 8
            elif wt == 5:
                val = bytes(buf[pos:pos + 4])
                pos += 4
            else:
                raise ValueError("unsupported wire type %d (field %d)" % (wt, fno))
            self.fields.append([fno, wt, val])

    # -- reading ---------------------------------------------------------------------------
    def values(self, fno):
        return [v for f, _, v in self.fields if f == fno]

    def first(self, fno, default=None):
        for f, _, v in self.fields:
            if f == fno:
                return v
        return default

    def string(self, fno, default=""):
        v = self.first(fno)
        return default if v is None else v.decode("utf-8")

    def strings(self, fno):
        return [v.decode("utf-8") for v in self.values(fno)]

    def msgs(self, fno):
        return [Msg(v) for v in self.values(fno)]

    def ints(self, fno):
        """A repeated int64 field, packed (proto3) or not (proto2)."""
        out = []
        for f, wt, v in self.fields:
            if f != fno:
                continue
            if wt == 0:
                out.append(signed64(v))
            else:
                pos = 0
                while pos < len(v):
                    x, pos = read_varint(v, pos)
                    out.append(signed64(x))
        return out

    def floats(self, fno):
        """A repeated float field, packed or not."""
        out = []
        for f, wt, v in self.fields:
            if f == fno:
                out.extend(struct.unpack("<%df" % (len(v) // 4), v))
        return out

    def int(self, fno, default=0):
        v = self.first(fno)
        return default if v is None else signed64(v)

    def float(self, fno, default=0.0):
        v = self.first(fno)
        return default if v is None else struct.unpack("<f", v)[0]

    # -- writing ---------------------------------------------------------------------------
    def remove(self, fno):
        self.fields = [x for x in self.fields if x[0] != fno]
        return self

    def add_bytes(self, fno, b):
        self.fields.append([fno, 2, bytes(b)])
        return self

    def add_string(self, fno, s):
        return self.add_bytes(fno, s.encode("utf-8"))

    def add_msg(self, fno, m):
        return self.add_bytes(fno, m.encode())

    def add_int(self, fno, v):
        self.fields.append([fno, 0, v + (1 << 64) if v < 0 else v])
        return self

    def add_float(self, fno, v):
        self.fields.append([fno, 5, struct.pack("<f", v)])
        return self

    def set_msgs(self, fno, msgs):
        """Replace every occurrence of field fno by msgs, at the place of the first one."""
        first = next((i for i, x in enumerate(self.fields) if x[0] == fno), len(self.fields))
        before = self.fields[:first]                        # no fno field before the first
        after = [x for x in self.fields[first:] if x[0] != fno]
        self.fields = before + [[fno, 2, m.encode() if isinstance(m, Msg) else bytes(m)] for m in msgs] + after
        return self

    def encode(self):
        out = []
        for fno, wt, v in self.fields:
            out.append(varint(fno << 3 | wt))
            if wt == 0:
                out.append(varint(v))
            elif wt == 2:
                out.append(varint(len(v)))
                out.append(v)
            else:
                out.append(v)
        return b"".join(out)


# -- typed helpers ---------------------------------------------------------------------------

def load(path):
    with open(path, "rb") as f:
        return Msg(f.read())


def save(model, path):
    data = model.encode()
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def node_make(op_type, inputs, outputs, name, attrs=(), domain=None):
    n = Msg()
    for x in inputs:
        n.add_string(1, x)
    for x in outputs:
        n.add_string(2, x)
    n.add_string(3, name)
    n.add_string(4, op_type)
    for a in attrs:
        n.add_msg(5, a)
    if domain:
        n.add_string(7, domain)
    return n


def attr_int(name, v):
    return Msg().add_string(1, name).add_int(3, v).add_int(20, A_INT)


def node_attrs(node):
    """{name: python value} of a NodeProto's attributes (ints, floats, strings, int lists)."""
    out = {}
    for a in node.msgs(5):
        name, t = a.string(1), a.int(20)
        if t == A_INT:
            out[name] = a.int(3)
        elif t == A_FLOAT:
            out[name] = a.float(2)
        elif t == A_STRING:
            out[name] = a.first(4, b"").decode("utf-8", "replace")
        elif t == A_INTS:
            out[name] = a.ints(8)
        elif t == A_FLOATS:
            out[name] = a.floats(7)
        elif t == A_TENSOR:
            out[name] = Msg(a.first(5))
        else:
            out[name] = a
    return out


def tensor_to_numpy(t):
    import numpy as np
    dims = t.ints(1)
    dt = t.int(2)
    if dt not in NUMPY_OF:
        raise ValueError("tensor %s: data type %d not handled" % (t.string(8), dt))
    raw = t.first(9)
    if raw is not None:
        a = np.frombuffer(raw, dtype=NUMPY_OF[dt]).copy()
    elif dt == FLOAT:
        a = np.array(t.floats(4), dtype=np.float32)
    elif dt in (INT64,):
        a = np.array(t.ints(7), dtype=np.int64)
    elif dt in (INT32, INT8, UINT8):
        a = np.array(t.ints(5), dtype=NUMPY_OF[dt])
    else:
        raise ValueError("tensor %s: no raw_data" % t.string(8))
    return a.reshape(dims) if dims else a.reshape(())


def tensor_from_numpy(a, name, data_type):
    import numpy as np
    t = Msg()
    for d in a.shape:
        t.add_int(1, int(d))
    t.add_int(2, data_type)
    t.add_string(8, name)
    t.add_bytes(9, np.ascontiguousarray(a, dtype=NUMPY_OF[data_type]).tobytes())
    return t


def value_info_shape(vi):
    """(elem_type, [dims]) of a ValueInfoProto (dim_param names as strings)."""
    tp = Msg(vi.first(2, b""))
    tt = Msg(tp.first(1, b""))
    shape = Msg(tt.first(2, b""))
    dims = []
    for d in shape.msgs(1):
        dims.append(d.int(1) if d.first(1) is not None else d.string(2, "?"))
    return tt.int(1), dims


def summary(model):
    """A short text description of a model: opsets, inputs, outputs, op counts."""
    g = Msg(model.first(7))
    ops = {}
    for n in g.msgs(1):
        ops[n.string(4)] = ops.get(n.string(4), 0) + 1
    opsets = ["%s:%d" % (o.string(1) or "ai.onnx", o.int(2)) for o in model.msgs(8)]
    ins = ["%s %s" % (v.string(1), value_info_shape(v)) for v in g.msgs(11)]
    outs = ["%s %s" % (v.string(1), value_info_shape(v)) for v in g.msgs(12)]
    return "ir %d, opsets %s, producer %s %s\ninputs %s\noutputs %s\n%d nodes: %s\n%d initializers" % (
        model.int(1), ", ".join(opsets), model.string(2), model.string(3), "; ".join(ins), "; ".join(outs),
        sum(ops.values()), ", ".join("%s %d" % kv for kv in sorted(ops.items())), len(g.values(5)))


if __name__ == "__main__":
    import sys
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: onnx_proto.py MODEL.onnx [--nodes]   (summary; --nodes lists every node)")
        sys.exit(0)
    m = load(sys.argv[1])
    print(summary(m))
    if "--nodes" in sys.argv[2:]:
        for n in Msg(m.first(7)).msgs(1):
            print("%-14s %-50s %s -> %s" % (n.string(4), n.string(3), ",".join(n.strings(1)), ",".join(n.strings(2))))
