#!/usr/bin/python3
"""Reads a checkpoint written by runtime/checkpoint.c with Python, without
any of vml's code, and checks the sample's contents.

    tests/unit/test_checkpoint --write-sample /tmp/sample.safetensors
    /usr/bin/python3 tests/python/check_safetensors.py /tmp/sample.safetensors

Three independent readers, each used when available:
  * the plain one here: struct + json by the safetensors spec (always);
  * the `safetensors` package (safetensors.numpy / safetensors.torch);
  * torch (torch.frombuffer on the data section).
Prints one line per reader and 'N passed, N failed' at the end; exits 1 on
any failure.  A reader that is not installed is reported as skipped.
"""
import json
import struct
import sys


def expected():
    """The sample of tests/unit/test_checkpoint.c (write_sample)."""
    w = [(i - 11) / 8.0 for i in range(24)]
    m = [i / 1024.0 for i in range(24)]
    v = [(i * i) / 65536.0 for i in range(24)]
    b = [-i / 4.0 for i in range(4)]
    tensors = {
        "q.W": ([6, 4], w),
        "q.b": ([4], b),
        "p.s": ([], [2.5]),
        "optim/train.0/q.W/m": ([6, 4], m),
        "optim/train.0/q.W/v": ([6, 4], v),
    }
    meta = {
        "vml.checkpoint": "1",
        "vml.vmx_hash": "caff02660fdc00ce",
        "vml.seed": "42",
        "vml.rng_step": "1234",
        "vml.epoch": "3",
        "vml.position": "640",
        "vml.optim.train.0.t": "17",
        "note": 'a "quoted" \\ line\nand a tab\t, caf\u00e9',
    }
    return tensors, meta


def plain_reader(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    out = {}
    spans = []
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        shape = info["shape"]
        b, e = info["data_offsets"]
        count = 1
        for d in shape:
            count *= d
        assert e - b == 4 * count, name
        spans.append((b, e))
        out[name] = (shape, list(struct.unpack("<%df" % count, data[b:e])))
    spans.sort()
    pos = 0
    for b, e in spans:
        assert b == pos, "hole or overlap in the data section"
        pos = e
    assert pos == len(data), "trailing bytes in the data section"
    return out, meta


def check(name, got_tensors, got_meta, results):
    tensors, meta = expected()
    ok = True
    why = ""
    if set(got_tensors) != set(tensors):
        ok, why = False, "names %s" % sorted(got_tensors)
    else:
        for k, (shape, vals) in tensors.items():
            gshape, gvals = got_tensors[k]
            if list(gshape) != shape or [float(x) for x in gvals] != vals:
                ok, why = False, "tensor %s differs" % k
                break
    if ok and got_meta is not None and got_meta != meta:
        ok, why = False, "metadata %r" % got_meta
    print("%s: %s%s" % (name, "ok" if ok else "FAILED", "" if ok else " (" + why + ")"))
    results.append(ok)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    path = sys.argv[1]
    results = []
    skipped = 0

    t, m = plain_reader(path)
    check("json+struct reader", t, m, results)

    try:
        import safetensors.numpy as stnp  # noqa: F401
        from safetensors import safe_open

        arrays = stnp.load_file(path)
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata()
        check("safetensors.numpy", {k: (list(a.shape), a.reshape(-1).tolist()) for k, a in arrays.items()}, meta,
              results)
    except ImportError:
        print("safetensors: skipped (the package is not installed)")
        skipped += 1

    try:
        import torch

        with open(path, "rb") as f:
            raw = bytearray(f.read())
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
        header.pop("__metadata__", None)
        data = raw[8 + n :]
        got = {}
        for k, info in header.items():
            b, e = info["data_offsets"]
            tt = torch.frombuffer(data, dtype=torch.float32, count=(e - b) // 4, offset=b).reshape(info["shape"])
            got[k] = (list(tt.shape), tt.reshape(-1).tolist())
        check("torch %s (frombuffer)" % torch.__version__, got, None, results)
    except ImportError:
        print("torch: skipped (not installed)")
        skipped += 1

    passed = sum(results)
    failed = len(results) - passed
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
