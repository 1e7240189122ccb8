#!/usr/bin/env python3
"""Cross-check of models/hf/safetensors.ts against the reference Python `safetensors` library.

Write the fixture (python.safetensors and expected.json, next to this script):

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install safetensors numpy ml_dtypes
    /tmp/stvenv/bin/python models/hf/testdata/make_safetensors_fixture.py

Check a file written by our writer (test/models/safetensors.test.ts writes it when
ALIGN_SAFETENSORS_CHECK_OUT is set); it must be byte-identical to what the library writes:

    ALIGN_SAFETENSORS_CHECK_OUT=/tmp/ours.safetensors npx vitest run test/models/safetensors.test.ts
    /tmp/stvenv/bin/python models/hf/testdata/make_safetensors_fixture.py --check /tmp/ours.safetensors

BF16 is built from numpy uint16 bit patterns (round to nearest even on the f32 bits), so torch is
not needed; when ml_dtypes is installed its independent bfloat16 cast must agree.
"""
import json
import math
import os
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, serialize

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = {"format": "pt", "source": "make_safetensors_fixture.py"}
# Inputs the TypeScript test rounds to BF16 and F16 for --check: round-to-even ties, f16
# subnormals and underflow (1e-8 is below half of f16's smallest subnormal 2^-24, so it becomes 0),
# f16 overflow (65520 and 1e5 round to Inf), the f32 extremes, signed zero, NaN, infinities.
ROUNDING_INPUTS = [
    0.1, 1 / 3, -1 / 3, 65504.0, 65519.0, 65520.0, 1e5, 1e-8, 1e-7, 6e-5, 2.0**-25, 3 * 2.0**-26,
    3 * 2.0**-25, 2.0**-24, 1.00390625, 1.01171875, 1e-40, 3.4028234663852886e38, -0.0, "NaN", "Infinity", "-Infinity",
]


def as_float(v):
    return float(v) if isinstance(v, str) else v


def bf16_bits(values_f32):
    """Round f32 to bf16 bit patterns, nearest even; NaN becomes a quiet NaN with its sign."""
    bits = np.asarray(values_f32, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values_f32, np.float32))
    rounded[nan] = ((bits[nan] >> 16) & 0x8000).astype(np.uint16) | 0x7FC0
    try:
        import ml_dtypes

        independent = np.asarray(values_f32, np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
        assert (independent == rounded).all(), (independent, rounded)
    except ImportError:
        pass
    return rounded


def f16_bits(values_f32):
    with np.errstate(over="ignore"):  # overflow to Inf is one of the cases under test
        return np.asarray(values_f32, np.float32).astype(np.float16).view(np.uint16)


def fixture_tensors():
    """name -> (dtype, shape, numpy array holding the stored bits)."""
    f32 = lambda xs: np.array(xs, np.float32)
    return {
        "embed.weight": ("F32", [2, 3], f32([0.5, -1.25, 1 / 3, -0.0, 1e-30, 3.4e38])),
        "scalar": ("F32", [], f32([42.0])),
        "empty": ("F32", [0, 3], f32([])),
        "norm.weight": ("BF16", [7], bf16_bits(f32([0.1, 1 / 3, 65504, -0.0, math.inf, -math.inf, math.nan]))),
        "half": ("F16", [2, 2], f16_bits(f32([0.1, 65504, 1e-7, -2.5]))),
        "input_ids": ("I64", [2, 2], np.array([0, -1, 2**31 - 1, -(2**31)], np.int64)),
        "mask": ("BOOL", [3], np.array([True, False, True])),
    }


NP_NAME = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "I64": "int64", "I32": "int32", "BOOL": "bool"}


def to_bytes(tensors, metadata):
    keep = []  # TensorSpec holds raw pointers: keep the arrays alive until serialize returns
    specs = {}
    for name, (dtype, shape, arr) in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        specs[name] = TensorSpec(dtype=NP_NAME[dtype], shape=shape, data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    return bytes(serialize(specs, metadata=metadata))


def values_of(dtype, arr):
    """The f32/int values a reader should produce, JSON-safe (non-finite floats as strings)."""
    if dtype == "BF16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F16":
        arr = arr.view(np.float16).astype(np.float32)
    out = []
    for v in arr.tolist():
        if isinstance(v, float) and not math.isfinite(v):
            out.append("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
        else:
            out.append(int(v) if isinstance(v, bool) else v)
    return out


def make():
    tensors = fixture_tensors()
    with open(os.path.join(HERE, "python.safetensors"), "wb") as f:
        f.write(to_bytes(tensors, METADATA))
    expected = {
        "library": f"safetensors {safetensors.__version__}",
        "metadata": METADATA,
        "tensors": {n: {"dtype": d, "shape": s, "values": values_of(d, a)} for n, (d, s, a) in tensors.items()},
        "rounding_inputs": ROUNDING_INPUTS,
    }
    # One line per tensor: small, and readable in a diff.
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items() if k != "tensors"]
    rows = [f"  {json.dumps(n)}: {json.dumps(t)}" for n, t in expected["tensors"].items()]
    lines.append(' "tensors": {\n' + ",\n".join(rows) + "\n }")
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    print("wrote python.safetensors and expected.json")


def check(path):
    """What the TypeScript test writes: the fixture's float tensors in their own dtype, its integer
    tensors as I32, and ROUNDING_INPUTS rounded to BF16 and F16, with metadata {"format": "pt"}."""
    tensors = {}
    for name, (dtype, shape, arr) in fixture_tensors().items():
        if dtype in ("I64", "BOOL"):
            dtype, arr = "I32", arr.astype(np.int32)
        tensors[name] = (dtype, shape, arr)
    inputs = np.array([as_float(v) for v in ROUNDING_INPUTS], np.float32)
    tensors["rounding.bf16"] = ("BF16", [len(inputs)], bf16_bits(inputs))
    tensors["rounding.f16"] = ("F16", [len(inputs)], f16_bits(inputs))
    want = to_bytes(tensors, {"format": "pt"})
    with open(path, "rb") as f:
        got = f.read()
    if got == want:
        print(f"OK: {path} is byte-identical to safetensors {safetensors.__version__}'s serialization ({len(tensors)} tensors)")
        return 0
    print(f"MISMATCH: {path} ({len(got)} bytes) differs from the library's bytes ({len(want)})")
    ours, theirs = dict(deserialize(got)), dict(deserialize(want))
    for name in sorted(set(ours) | set(theirs)):
        if ours.get(name) != theirs.get(name):
            print(f"  {name}: ours {ours.get(name)} vs library {theirs.get(name)}")
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    elif len(sys.argv) == 1:
        make()
    else:
        sys.exit(__doc__)
