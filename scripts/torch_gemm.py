"""cuBLAS fp32 GEMM through PyTorch at the sizes bench_core uses, for comparison (GPU machine).
TF32 is disabled so the numbers are true fp32. Prints one JSON object."""
import json
import time

import torch

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
print(json.dumps({"name": "torch_cublas_gemm_f32", "device": torch.cuda.get_device_name(0),
                  "torch": torch.__version__, "gemm": results}, indent=2))
