#!/usr/bin/python3
"""Charts and a table from the benchmark suite's results.

Reads every benchmarks/results/*.jsonl and *.json (or the files/folders given), keeps the lines
that `magellano bench --json` writes (objects with name, device, median_s and gflops or gbps;
older one-object-per-program files are skipped), keeps the newest result per (name, sizes,
device), and writes into --out (default benchmarks/results):
  bench_rates.png        every result's GB/s or GFLOP/s, one bar per device (log scale):
                         the CPU (PoCL) next to the GPU (H100) and the host baselines
  bench_pct_of_peak.png  each result as a percentage of its device's own peak measured in the
                         same run (copy bandwidth for GB/s, fp32 GEMM for GFLOP/s)
and prints a Markdown table (for the README) on stdout.

Needs matplotlib: `sudo apt-get install python3-matplotlib` (Debian's package).
Usage: scripts/plot_bench.py [FILES_OR_DIRS...] [--out DIR]   (Debian's /usr/bin/python3)
"""
import argparse
import glob
import json
import os
import sys


def load(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.jsonl")) + glob.glob(os.path.join(p, "*.json")))
        else:
            files.append(p)
    results = {}
    for f in files:
        with open(f) as fh:
            text = fh.read()
        objs = []
        try:
            objs = [json.loads(text)]
        except json.JSONDecodeError:
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        objs.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
        for o in objs:
            if not isinstance(o, dict) or not {"name", "device", "median_s"} <= o.keys():
                continue
            if "gflops" not in o and "gbps" not in o:
                continue
            key = (o["name"], json.dumps(o.get("sizes", {}), sort_keys=True), o["device"])
            if key not in results or o.get("date", "") >= results[key].get("date", ""):
                results[key] = o
    return list(results.values())


def label(o):
    sizes = o.get("sizes", {})
    parts = []
    for k, v in sizes.items():
        if k in ("bytes", "bytes_moved", "params"):
            continue
        parts.append(f"{k}={v}")
    return o["name"] + (" " + " ".join(parts) if parts else "")


def device_label(o):
    t = o.get("device_type", "")
    name = o["device"]
    if t == "host":
        return "host C++: " + name
    if "pthread" in name or "PoCL" in o.get("driver", "") or "debian" in o.get("driver", ""):
        return "PoCL: " + name
    return name


def rate(o):
    return (o["gbps"], "GB/s") if "gbps" in o else (o["gflops"], "GFLOP/s")


def table(results, devices, labels):
    by = {(label(o), device_label(o)): o for o in results}
    lines = ["| benchmark | " + " | ".join(devices) + " |", "|---" * (len(devices) + 1) + "|"]
    for lab in labels:
        cells = []
        for d in devices:
            o = by.get((lab, d))
            if not o:
                cells.append("")
                continue
            v, unit = rate(o)
            pct = o.get("pct_of_peak")
            cell = f"{v:.3g} {unit}" if v < 100 else f"{v:,.0f} {unit}"
            if pct is not None:
                cell += f" ({pct:.2g}%)" if pct < 10 else f" ({pct:.0f}%)"
            if o.get("tokens_per_s"):
                cell += f", {o['tokens_per_s']:,.0f} tok/s"
            cells.append(cell)
        lines.append(f"| `{lab}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", default=["benchmarks/results"])
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    results = load(args.paths)
    if not results:
        sys.exit("plot_bench: no suite results found in " + ", ".join(args.paths))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_bench: needs matplotlib: sudo apt-get install python3-matplotlib")

    devices = sorted({device_label(o) for o in results}, key=lambda d: (d.startswith("host"), d))
    labels = list(dict.fromkeys(label(o) for o in results))  # in the order the suite ran them
    by = {(label(o), device_label(o)): o for o in results}
    width = 0.8 / max(len(devices), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def bars(ax, labs, value_of, ylabel, log):
        for i, d in enumerate(devices):
            xs, ys = [], []
            for j, lab in enumerate(labs):
                o = by.get((lab, d))
                v = value_of(o) if o else None
                if v is not None and v > 0:
                    xs.append(j + (i - (len(devices) - 1) / 2) * width)
                    ys.append(v)
            if xs:
                ax.bar(xs, ys, width, label=d, color=colors[i % len(colors)])
        ax.set_xticks(range(len(labs)))
        ax.set_xticklabels([lab if len(lab) <= 48 else lab[:46] + "..." for lab in labs],
                           rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)

    # Bandwidth results (GB/s) and compute results (GFLOP/s) in two panels.
    unit_of = {label(o): rate(o)[1] for o in results}
    groups = [(u, [lab for lab in labels if unit_of[lab] == u]) for u in ("GB/s", "GFLOP/s")]
    groups = [(u, labs) for u, labs in groups if labs]
    for fname, value_of, ylabel, log, title in (
            ("bench_rates.png", lambda o: rate(o)[0], "{} (log scale)", True,
             "Magellano benchmark suite: the same code on each device"),
            ("bench_pct_of_peak.png", lambda o: o.get("pct_of_peak"), "% of the device's own peak ({})", False,
             "Share of each device's peak measured in the same run")):
        fig, axes = plt.subplots(1, len(groups), figsize=(max(10, 0.5 * len(labels) + 4), 6.5),
                                 gridspec_kw={"width_ratios": [len(l) + 1 for _, l in groups]}, squeeze=False)
        for ax, (u, labs) in zip(axes[0], groups):
            peak = "copy bandwidth" if u == "GB/s" else "fp32 GEMM"
            bars(ax, labs, value_of, ylabel.format(u if log else peak), log)
            if not log:
                ax.axhline(100, color="black", lw=0.8)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, fname), dpi=100)
    print(table(results, devices, labels))


if __name__ == "__main__":
    main()
