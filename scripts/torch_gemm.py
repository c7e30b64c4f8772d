"""cuBLAS fp32 GEMM through PyTorch at the sizes `magellano bench gemm` uses, for comparison
(GPU machine). TF32 is disabled so the numbers are true fp32. Prints one JSON object; with
--jsonl PATH also writes one suite-format line per size (name gemm_cublas, as
`magellano bench --json` writes them) to PATH for scripts/plot_bench.py."""
import argparse
import datetime
import json
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--jsonl", help="also write suite-format JSON lines here")
args = parser.parse_args()

assert torch.cuda.is_available(), "no CUDA device"
torch.backends.cuda.matmul.allow_tf32 = False
results = []
for n in (512, 1024, 2048, 4096):
    a = torch.full((n, n), 0.5, device="cuda")
    b = torch.full((n, n), 0.25, device="cuda")
    torch.matmul(a, b)
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    s = sorted(times)[len(times) // 2]
    results.append({"n": n, "median_s": s, "gflops": 2 * n**3 / s / 1e9})
device = torch.cuda.get_device_name(0)
print(json.dumps({"name": "torch_cublas_gemm_f32", "device": device,
                  "torch": torch.__version__, "gemm": results}, indent=2))
if args.jsonl:
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    with open(args.jsonl, "w") as f:
        for r in results:
            n = r["n"]
            f.write(json.dumps({"name": "gemm_cublas", "device": device, "device_type": "gpu",
                                "driver": "CUDA " + str(torch.version.cuda) + ", torch " + torch.__version__,
                                "date": day, "sizes": {"m": n, "n": n, "k": n},
                                "median_s": r["median_s"], "repeats": 10, "gflops": r["gflops"],
                                "pct_of_peak": None}) + "\n")
