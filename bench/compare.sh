#!/bin/sh
# compare.sh - the engine against PyTorch eager FP32 (and, with --int8, engine INT8 against
# PyTorch FX INT8), side by side: see compare.py (--help).
# compare.py needs only the standard library; it runs the PyTorch side with $BZN_PYTHON or
# /usr/bin/python3, which must have torch.
exec /usr/bin/python3 "$(dirname "$0")/compare.py" "$@"
