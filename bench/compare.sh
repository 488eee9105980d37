#!/bin/sh
# compare.sh - the engine against PyTorch eager FP32 (and, with --int8, engine INT8 against
# PyTorch FX INT8; with --ort, ONNX Runtime FP32 and QDQ INT8 too), side by side: see
# compare.py (--help).
# compare.py needs only the standard library; it runs the PyTorch side with $BZN_PYTHON or
# /usr/bin/python3, which must have torch; --ort also needs node and npm (onnxruntime-node is
# installed into build/ort the first time). $BLAZENEO selects the engine's CLI.
exec /usr/bin/python3 "$(dirname "$0")/compare.py" "$@"
