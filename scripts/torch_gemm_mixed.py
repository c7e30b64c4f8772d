"""cuBLAS bf16 and tf32 GEMMs through PyTorch, the peer of `magellano bench gemm --compute
tf32,bf16` (GPU machine): square sizes 2048, 4096 and 8192 in bf16, tf32 (allow_tf32) and true
fp32, and phase1's largest training products at 4,096 tokens in bf16. Median of 20 timed runs
after 3 warm-ups. Prints one JSON object of GFLOP/s."""
import json
import time

import torch

assert torch.cuda.is_available(), "no CUDA device"


def gflops(m, n, k, dtype, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 2 * m * n * k / sorted(times)[10] / 1e9


results = {"device": torch.cuda.get_device_name()}
for n in (2048, 4096, 8192):
    results[f"bf16_{n}"] = gflops(n, n, n, torch.bfloat16, False)
    results[f"tf32_{n}"] = gflops(n, n, n, torch.float32, True)
    results[f"fp32_{n}"] = gflops(n, n, n, torch.float32, False)
for m, n, k in ((4096, 1792, 448), (4096, 448, 1792), (1792, 448, 4096), (4096, 50257, 448), (4096, 448, 50257)):
    results[f"bf16_{m}x{n}x{k}"] = gflops(m, n, k, torch.bfloat16, False)
print(json.dumps({k: (round(v) if isinstance(v, float) else v) for k, v in results.items()}))
