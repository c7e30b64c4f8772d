#!/usr/bin/env python3
"""bitsandbytes' create_dynamic_map(signed, 7, 8) computed with PyTorch as bitsandbytes/functional.py
writes it (the function is copied below: it is the definition under test), as fp32 bit patterns.
Needs only torch. Magellano's C++ table (optim/dynamic_map.hpp) is written in the same format by
  MAGELLANO_DYNAMIC_MAP_OUT=FILE build/tests/test_kernel --gtest_filter=AdamW8.DynamicMapIsBitsandbytesMap

  python3 scripts/bnb_dynamic_map.py              # 512 lines: "s|u index hex value"
  python3 scripts/bnb_dynamic_map.py --check FILE # compares with that file bit for bit (exit 1 if any differ)
"""
import struct
import sys

import torch


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    # bitsandbytes/functional.py (bitsandbytes-foundation/bitsandbytes, 2026), unchanged logic.
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1,
        )
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2**total_bits
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


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
