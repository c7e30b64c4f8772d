#!/usr/bin/env python3
"""bitsandbytes' create_dynamic_map(signed, 7, 8) computed with PyTorch the way bitsandbytes/functional.py
computes it (the same torch operations in the same order), as fp32 bit patterns.
Needs only torch. Magellano's C++ table (optim/dynamic_map.hpp) is written in the same format by
  MAGELLANO_DYNAMIC_MAP_OUT=FILE build/tests/test_kernel --gtest_filter=AdamW8.DynamicMapIsBitsandbytesMap

  python3 scripts/bnb_dynamic_map.py              # 512 lines: "s|u index hex value"
  python3 scripts/bnb_dynamic_map.py --check FILE # compares with that file bit for bit (exit 1 if any differ)
"""
import struct
import sys

import torch


def create_dynamic_map(signed=True):
    """The 8-bit map of bitsandbytes' create_dynamic_map(signed, 7, 8), written anew here with the
    same torch operations in the same order (so torch rounds every value as bitsandbytes' does):
    per decade i = 0..6, the means of neighbouring points of linspace(0.1, 1, f) in float32,
    f = 2^i + 1 (signed) or 2^(i+1) + 1 (unsigned), scaled by the Python number 10 ** (i - 6)
    (and negated too when signed); then 0 and 1; sorted."""
    values = []
    for i in range(7):
        points = torch.linspace(0.1, 1, 2 ** (i + (0 if signed else 1)) + 1, dtype=torch.float32)
        mid = (points[:-1] + points[1:]) / 2.0
        scale = 10 ** (i - 6)
        values.extend((scale * mid).tolist())
        if signed:
            values.extend((-scale * mid).tolist())
    values += [0, 1.0]
    assert len(values) == 256
    return torch.tensor(sorted(values), dtype=torch.float32)


def hexes(t):
    return [struct.unpack("<I", struct.pack("<f", float(x)))[0] for x in t.tolist()]


def main():
    lines = []
    for tag, signed in (("s", True), ("u", False)):
        for k, (h, v) in enumerate(zip(hexes(create_dynamic_map(signed)), create_dynamic_map(signed).tolist())):
            lines.append(f"{tag} {k} {h:08x} {v!r}")
    if "--check" in sys.argv and len(sys.argv) > sys.argv.index("--check") + 1:
        want = open(sys.argv[sys.argv.index("--check") + 1]).read().split("\n")
        got = [l.split(" ")[2] for l in lines]
        theirs = [l.split(" ")[2] for l in want if l.strip()]
        bad = [i for i, (a, b) in enumerate(zip(got, theirs)) if a != b]
        print(f"{len(bad)} of {len(got)} codes differ" + (f": first at {lines[bad[0]]}" if bad else ""))
        return 1 if bad or len(theirs) != len(got) else 0
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
