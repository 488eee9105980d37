#!/usr/bin/env python3
"""
qdq_onnx.py FP32.onnx --calib CACHE -o INT8.onnx [--activations uint8|int8] [--report FILE]

Turns the FP32 model of export_onnx.py into a QDQ INT8 model for ONNX Runtime, the format
ORT's own quantize_static(quant_format=QDQ, per_channel=True) writes, without the `onnx`
package (onnx_proto.py reads and writes the protobuf). Activation scales come from the
engine's calibration cache (`blazeneo calibrate`: TensorRT format, one per-tensor scale =
amax / 127 per PyTorch module output), so ORT quantizes with the same clipping ranges as the
engine.

What is written:
  * every activation tensor (the graph input and the outputs of every Conv, ReLU/ReLU6,
    Concat, MaxPool and Resize; a Conv followed by its activation is quantized after the
    activation) gets QuantizeLinear -> DequantizeLinear, per-tensor;
  * every Conv weight becomes an int8 initializer, per output channel, symmetric
    (scale_c = max|w_c| / 127, zero point 0, values in [-127, 127]) + DequantizeLinear
    (axis 0); every bias an int32 initializer with scale x_scale * w_scale_c (zero point 0)
    + DequantizeLinear, as quantize_static does;
  * the graph output (the logits, after the final 8x Resize) stays float: the head
    convolution's output is quantized, the last Resize reads its DequantizeLinear;
  * nothing else changes: the graph input and output keep their names, shapes and float32
    type, and every field this script does not touch is copied byte for byte.
ORT (1.30) then fuses DQ -> Conv (-> Clip/Relu) -> Q into QLinearConv (its int8 kernels, NHWC),
DQ -> Concat -> Q into QLinearConcat and DQ -> MaxPool -> Q into an 8-bit MaxPool. Resize
(bilinear) keeps its DQ/Q and runs in float: ORT no longer drops the Q/DQ around a linear or
cubic Resize, because an integer bilinear resize does not compute what the QDQ graph says
(onnxruntime PR 28414, issue 21319). So a Q/DQ after the last Resize would only round the
logits, and there is none.

Activation encoding (--activations, default uint8): the engine's scales are symmetric int8
(amax / 127). ORT's QLinearConv on x86 runs only u8 activations x s8 weights (QDQ int8
activations stay unfused on x86 unless a session option says otherwise), so by default:
  * tensors that are >= 0 by construction (ReLU and ReLU6 outputs, and pools, resizes and
    concatenations of such tensors): uint8, zero point 0, scale = amax / 255 (the same range
    [0, amax] as the engine, one more bit of resolution; the zero point ORT needs to drop the
    ReLU/Clip in front of the Q);
  * signed tensors (the input, the linear RFB branch convolutions, the head): uint8 with zero
    point 128 and scale = amax / 127, the engine's int8 grid shifted by 128.
--activations int8 writes int8 (zero point -128 resp. 0), ORT's default on ARM.

Where the scales come from (the cache names are module paths; the exporter's node names carry
the same paths, e.g. "/encoder/base.3/layers.0/relu/Clip"):
  * a cache entry names a module; its tensor is the output of the last (non-Constant) node
    inside that module's scope, so "encoder.base.3.layers.0" is that ConvLayer's Clip output
    and "encoder.base.3" the HarDBlock's final Concat;
  * ReLU6 outputs: amax capped at 6 (entropy calibration can put it a bin above);
  * MaxPool outputs: the input's scale and zero point, not the cache's (a maximum never leaves
    the input's range, and ORT runs MaxPool on 8-bit data only when both sides are equal; the
    engine's cache has the same amax, 6, for all four);
  * Concats that are no module's output (inside HarDBlocks, the RFB and aggregation concats):
    amax = the largest amax of its inputs (what the concatenated values can reach).
Any other tensor without a cache entry is an error. --report FILE writes a JSON account of every
quantized tensor (source, amax, scale, zero point) and every weight.

Prints one JSON line with counts.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_proto as P  # noqa: E402
from onnx_proto import Msg  # noqa: E402


def read_cache(path):
    """TensorRT calibration cache -> {name: amax} (amax = scale * 127)."""
    out = {}
    with open(path) as f:
        header = f.readline().strip()
        if not header.startswith("TRT-"):
            raise SystemExit("qdq_onnx: %s is not a TensorRT calibration cache (header %r)" % (path, header))
        for line in f:
            line = line.strip()
            if not line:
                continue
            name, hexbits = line.rsplit(":", 1)
            scale = struct.unpack(">f", bytes.fromhex(hexbits.strip().rjust(8, "0")))[0]
            out[name.strip()] = float(np.float32(scale) * np.float32(127.0))
    return header, out


def module_path(node_name):
    """"/rfb3/branch1/branch1.0/conv/Conv" -> "rfb3.branch1.0.conv" (the op's module).
    Scope components are the attribute names of each level, where a container's child is
    written with its parent's name in front ("branch1" then "branch1.0")."""
    comps = [c for c in node_name.split("/") if c][:-1]
    parts = []
    for c in comps:
        if parts and c.startswith(parts[-1] + "."):
            parts[-1] = c
        else:
            parts.append(c)
    return ".".join(parts)


def constant_value(node):
    t = P.node_attrs(node).get("value")
    return None if t is None else P.tensor_to_numpy(t)


def float32_scale(amax, levels):
    s = np.float32(amax / levels)
    return np.float32(1.0) if not s > 0 else s


def main():
    ap = argparse.ArgumentParser(description="FP32 ONNX -> QDQ INT8 ONNX with the engine's calibration scales")
    ap.add_argument("model", help="FP32 model from export_onnx.py")
    ap.add_argument("--calib", required=True, help="the engine's calibration cache (blazeneo calibrate)")
    ap.add_argument("-o", "--output", required=True, help="the QDQ model to write")
    ap.add_argument("--activations", choices=("uint8", "int8"), default="uint8",
                    help="activation type (default uint8: what ORT's x86 int8 kernels take)")
    ap.add_argument("--report", help="write a JSON account of every scale here")
    a = ap.parse_args()

    header, cache = read_cache(a.calib)
    model = P.load(a.model)
    graph = Msg(model.first(7))
    nodes = graph.msgs(1)
    inits = {t.string(8): t for t in graph.msgs(5)}
    graph_inputs = [v.string(1) for v in graph.msgs(11) if v.string(1) not in inits]
    graph_outputs = [v.string(1) for v in graph.msgs(12)]
    if len(graph_inputs) != 1:
        raise SystemExit("qdq_onnx: expected one graph input, got %s" % graph_inputs)
    consts = {}                                 # Constant node outputs -> numpy
    producer, consumers = {}, {}
    for i, n in enumerate(nodes):
        if n.string(4) == "Constant":
            consts[n.strings(2)[0]] = constant_value(n)
        for t in n.strings(2):
            producer[t] = i
        for t in n.strings(1):
            if t:
                consumers.setdefault(t, []).append(i)

    # -- the engine's names -> tensors ------------------------------------------------------
    last_in_scope = {}                          # module path -> output of its last node
    for n in nodes:
        if n.string(4) == "Constant":
            continue
        mp = module_path(n.string(3))
        parts = mp.split(".") if mp else []
        for k in range(1, len(parts) + 1):
            last_in_scope[".".join(parts[:k])] = n.strings(2)[0]
    cache_of = {}                               # tensor -> (cache name, amax)
    unmatched = []
    for name, amax in cache.items():
        t = graph_inputs[0] if name == "input" else last_in_scope.get(name)
        if t is None:
            unmatched.append(name)
            continue
        if t in cache_of and cache_of[t][1] != amax:
            raise SystemExit("qdq_onnx: cache entries %s and %s both name %s with different scales"
                             % (cache_of[t][0], name, t))
        cache_of.setdefault(t, (name, amax))

    # -- which tensors are quantized, and with what ------------------------------------------
    q = {}      # tensor -> dict(amax, nonneg, source, scale, zp)

    def encode(amax, nonneg):
        if nonneg:
            return float32_scale(amax, 255.0), (0 if a.activations == "uint8" else -128)
        return float32_scale(amax, 127.0), (128 if a.activations == "uint8" else 0)

    def add(t, amax, nonneg, source, like=None):
        if like is not None:
            d = dict(q[like])
            d["source"] = source
        else:
            scale, zp = encode(amax, nonneg)
            d = dict(amax=float(amax), nonneg=nonneg, source=source, scale=scale, zp=zp)
        if t in cache_of:
            d["cache_name"], d["cache_amax"] = cache_of[t]
        q[t] = d

    def from_cache(t, what):
        if t not in cache_of:
            raise SystemExit("qdq_onnx: no cache entry for %s (%s); cache %s" % (t, what, a.calib))
        return cache_of[t][1]

    inp = graph_inputs[0]
    add(inp, from_cache(inp, "graph input"), False, "cache")
    for i, n in enumerate(nodes):
        op, outs, ins = n.string(4), n.strings(2), n.strings(1)
        if op == "Constant":
            continue
        out = outs[0]
        if out in graph_outputs:
            if op not in ("Conv", "Relu", "Clip", "Concat", "MaxPool", "Resize"):
                raise SystemExit("qdq_onnx: operator %s (%s) not handled" % (op, n.string(3)))
            continue                            # the logits stay float (see the notes above)
        if op == "Conv":
            users = consumers.get(out, [])
            if len(users) == 1 and nodes[users[0]].string(4) in ("Relu", "Clip"):
                continue                        # quantized after its activation
            add(out, from_cache(out, "Conv output"), False, "cache")
        elif op in ("Relu", "Clip"):
            if producer.get(ins[0]) is None or nodes[producer[ins[0]]].string(4) != "Conv":
                raise SystemExit("qdq_onnx: %s %s does not follow a Conv" % (op, n.string(3)))
            amax = from_cache(out, op + " output")
            nonneg, source = True, "cache"
            if op == "Clip":
                lo = consts.get(ins[1]) if len(ins) > 1 and ins[1] else None
                hi = consts.get(ins[2]) if len(ins) > 2 and ins[2] else None
                lo = float(lo) if lo is not None else -np.inf
                hi = float(hi) if hi is not None else np.inf
                nonneg = lo >= 0
                if amax > hi:
                    amax, source = hi, "cache, capped at the Clip maximum %g" % hi
            add(out, amax, nonneg, source)
        elif op in ("MaxPool", "Resize"):
            if ins[0] not in q:
                raise SystemExit("qdq_onnx: %s %s: input %s not quantized" % (op, n.string(3), ins[0]))
            if op == "Resize" and out in cache_of:
                add(out, cache_of[out][1], q[ins[0]]["nonneg"], "cache")
            else:
                add(out, None, q[ins[0]]["nonneg"], "input's scale (%s)" % op, like=ins[0])
        elif op == "Concat":
            for t in ins:
                if t not in q:
                    raise SystemExit("qdq_onnx: Concat %s: input %s not quantized" % (n.string(3), t))
            nonneg = all(q[t]["nonneg"] for t in ins)
            if out in cache_of:
                add(out, cache_of[out][1], nonneg, "cache")
            else:
                add(out, max(q[t]["amax"] for t in ins), nonneg, "max of its inputs' amax")
        else:
            raise SystemExit("qdq_onnx: operator %s (%s) not handled" % (op, n.string(3)))

    qtype = P.UINT8 if a.activations == "uint8" else P.INT8

    # -- rewrite -----------------------------------------------------------------------------
    new_inits = []
    new_nodes = []
    used_init = set()

    def scalar_init(name, value, dtype):
        new_inits.append(P.tensor_from_numpy(np.array(value, dtype=P.NUMPY_OF[dtype]), name, dtype))
        return name

    def qdq_nodes(src, dst, t):
        """Q(src) -> DQ -> dst for tensor t's parameters."""
        d = q[t]
        s = scalar_init(t + "_scale", d["scale"], P.FLOAT)
        z = scalar_init(t + "_zero_point", d["zp"], qtype)
        return [P.node_make("QuantizeLinear", [src, s, z], [t + "_quantized"], t + "_QuantizeLinear"),
                P.node_make("DequantizeLinear", [t + "_quantized", s, z], [dst], t + "_DequantizeLinear")]

    renamed = {}                                # graph input -> its DQ output
    inp_dq = inp + "_dequantized"
    renamed[inp] = inp_dq
    new_nodes += qdq_nodes(inp, inp_dq, inp)
    weights_report = []
    bias_clamped = 0
    for n in nodes:
        op = n.string(4)
        ins, outs = n.strings(1), n.strings(2)
        ins = [renamed.get(t, t) for t in ins]
        if op == "Conv":
            x_src = n.strings(1)[0]
            x_scale = np.float32(q[x_src]["scale"])
            wname = ins[1]
            w = P.tensor_to_numpy(inits[wname]).astype(np.float32)
            co = w.shape[0]
            wmax = np.abs(w.reshape(co, -1)).max(axis=1)
            ws = (wmax / np.float32(127.0)).astype(np.float32)
            ws[ws == 0] = 1.0
            wq = np.clip(np.rint(w / ws.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
            new_inits.append(P.tensor_from_numpy(wq, wname + "_quantized", P.INT8))
            new_inits.append(P.tensor_from_numpy(ws, wname + "_scale", P.FLOAT))
            new_inits.append(P.tensor_from_numpy(np.zeros(co, np.int8), wname + "_zero_point", P.INT8))
            wdq = P.node_make("DequantizeLinear", [wname + "_quantized", wname + "_scale", wname + "_zero_point"],
                              [wname + "_dequantized"], wname + "_DequantizeLinear", [P.attr_int("axis", 0)])
            new_nodes.append(wdq)
            used_init.add(wname)
            werr = float(np.abs(wq.astype(np.float32) * ws.reshape(-1, 1, 1, 1) - w).max())
            entry = {"conv": n.string(3), "weight": wname, "shape": list(w.shape), "max_abs_error": werr}
            new_ins = [ins[0], wname + "_dequantized"]
            if len(ins) > 2 and ins[2]:
                bname = ins[2]
                b = P.tensor_to_numpy(inits[bname]).astype(np.float32)
                bs = (x_scale * ws).astype(np.float32)
                bq = np.rint(b.astype(np.float64) / bs.astype(np.float64))
                lim = 2 ** 31 - 1
                bias_clamped += int(np.sum(np.abs(bq) > lim))
                bq = np.clip(bq, -lim, lim).astype(np.int32)
                new_inits.append(P.tensor_from_numpy(bq, bname + "_quantized", P.INT32))
                new_inits.append(P.tensor_from_numpy(bs, bname + "_scale", P.FLOAT))
                new_inits.append(P.tensor_from_numpy(np.zeros(co, np.int32), bname + "_zero_point", P.INT32))
                new_nodes.append(P.node_make("DequantizeLinear",
                                             [bname + "_quantized", bname + "_scale", bname + "_zero_point"],
                                             [bname + "_dequantized"], bname + "_DequantizeLinear",
                                             [P.attr_int("axis", 0)]))
                used_init.add(bname)
                new_ins.append(bname + "_dequantized")
            weights_report.append(entry)
            n.remove(1)
            # NodeProto fields in order: input(1) first; re-add at the front
            n.fields = [[1, 2, t.encode("utf-8")] for t in new_ins] + n.fields
        else:
            n.remove(1)
            n.fields = [[1, 2, t.encode("utf-8")] for t in ins] + n.fields
        out = outs[0] if outs else None
        if op != "Constant" and out in q:
            pre = out + "_float"
            n.remove(2)
            at = sum(1 for f in n.fields if f[0] == 1)
            n.fields = n.fields[:at] + [[2, 2, pre.encode("utf-8")]] + n.fields[at:]
            new_nodes.append(n)
            new_nodes += qdq_nodes(pre, out, out)
        else:
            new_nodes.append(n)

    kept_inits = [t for name, t in inits.items() if name not in used_init]
    graph.set_msgs(1, new_nodes)
    graph.set_msgs(5, kept_inits + new_inits)
    model.set_msgs(7, [graph])
    tmp = a.output + ".tmp%d" % os.getpid()
    nbytes = P.save(model, tmp)
    os.replace(tmp, a.output)

    # cache entries that set no scale, and why
    used = {d.get("cache_name") for d in q.values() if d["source"].startswith("cache")}
    not_used = {}
    for name in cache:
        if name in used:
            continue
        if name in unmatched:
            not_used[name] = "no such tensor in the ONNX graph (the exporter merged it with an identical one)"
        else:
            t = graph_inputs[0] if name == "input" else last_in_scope[name]
            if t in graph_outputs:
                not_used[name] = "the graph output (kept float)"
            elif t in q:
                not_used[name] = q[t]["source"]
            else:
                not_used[name] = "not quantized"
    sources = {}
    for d in q.values():
        key = d["source"].split(" (")[0]
        sources[key] = sources.get(key, 0) + 1
    res = {"onnx": os.path.abspath(a.output), "bytes": nbytes, "from": os.path.abspath(a.model),
           "calib": os.path.abspath(a.calib), "calib_header": header, "activations": a.activations,
           "quantized_tensors": len(q), "scale_sources": sources, "convs": len(weights_report),
           "cache_entries": len(cache), "cache_entries_not_used": not_used, "bias_clamped": bias_clamped}
    if a.report:
        with open(a.report, "w") as f:
            json.dump({"summary": res,
                       "tensors": {t: {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}
                                   for t, d in q.items()},
                       "weights": weights_report}, f, indent=1)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
