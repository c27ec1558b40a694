"""SageAttention2's sm90 kernel (int8 Q·Kᵀ with per-thread scales, fp8 P·V, fp32+fp32 accumulation) as a peer.

  python3 bench/sage.py time out.csv [--quick]          # kernel alone and end to end, the grid of bench/sdpa.py
  python3 bench/sage.py inputs DIR                      # f16 .npy inputs for the accuracy comparison (+ Sage2's O)
  python3 bench/sage.py accuracy DIR                    # float64 reference; relative L2 of Sage2 and of DIR/ours-*.npy

Needs its build (bench/setup_peer.py) on PYTHONPATH: the folder holding sageattention/. Rows are written in
bench/sdpa.py's CSV form with backends "sage2" (kernel alone: inputs quantized beforehand, as its own benchmark does)
and "sage2-e2e" (sageattn_qk_int8_pv_fp8_cuda_sm90 from f16). Its causal mask is top-left; with Sq = Sk it is ours.
"""
import csv
import os
import sys

import numpy as np
import torch

from timing import median_ms


def kernel_alone(q, k, v, causal):
    """Sage2's own steps (core.sageattn_qk_int8_pv_fp8_cuda_sm90) done once; the returned call is the kernel."""
    from sageattention import core
    d = q.size(-1)
    km = k.mean(dim=2, keepdim=True)
    qi, qs, ki, ks = core.per_thread_int8_triton(q, k, km, tensor_layout="HND", BLKQ=64, WARPQ=16, BLKK=128, WARPK=128)
    vf, vs, _ = core.per_channel_fp8(v, tensor_layout="HND", smooth_v=False)
    o = torch.empty_like(q)
    return lambda: core.sm90_compile.qk_int8_sv_f8_accum_f32_fuse_v_scale_attn_inst_buf(
        qi, ki, vf, o, qs, ks, vs, 1, int(causal), 3, d ** -0.5, 0)


def end_to_end(q, k, v, causal):
    import sageattention
    return lambda: sageattention.sageattn_qk_int8_pv_fp8_cuda_sm90(q, k, v, tensor_layout="HND", is_causal=causal)


def time_sage(path, quick):
    lengths = [1024, 4096, 16384] if quick else [1024, 2048, 4096, 8192, 16384]
    rows = []
    for d in (64, 128):
        for s in lengths:
            b, h = 16384 // s, 2048 // d
            q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
            for causal in (False, True):
                ops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
                for name, make in (("sage2", kernel_alone), ("sage2-e2e", end_to_end)):
                    ms = median_ms(make(q, k, v, causal))
                    rows.append([name, d, s, causal, f"{ms:.3f}", f"{ops / ms / 1e9:.3f}"])
                    print(",".join(map(str, rows[-1])), flush=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["backend", "head_dim", "seq", "causal", "ms", "tops"])
        writer.writerows(rows)


# The accuracy cases: Gaussian, and the outlier case (a few Q channels ×6, K with per-channel offsets) where
# per-thread Q scales help. [B, H, S, D] f16, non-causal.
CASES = {"gaussian": False, "outliers": True}
SHAPE = (2, 16, 4096, 128)


def make_inputs(directory):
    os.makedirs(directory, exist_ok=True)
    import sageattention
    for case, outliers in CASES.items():
        g = torch.Generator(device="cuda").manual_seed(20261206)
        q, k, v = (torch.randn(*SHAPE, device="cuda", generator=g) for _ in range(3))
        if outliers:
            q[..., [3, 41, 77, 100]] *= 6.0
            k += 3.0 * torch.randn(1, SHAPE[1], 1, SHAPE[3], device="cuda", generator=g)
        q, k, v = (t.half() for t in (q, k, v))
        for name, t in (("q", q), ("k", k), ("v", v)):
            np.save(os.path.join(directory, f"{case}-{name}.npy"), t.cpu().numpy())
        o = sageattention.sageattn_qk_int8_pv_fp8_cuda_sm90(q, k, v, tensor_layout="HND", is_causal=False)
        np.save(os.path.join(directory, f"sage2-{case}.npy"), o.cpu().numpy())


def rel_l2(o, ref):
    return float(torch.linalg.vector_norm(o.double() - ref) / torch.linalg.vector_norm(ref))


# Our outputs by tag (DIR/ours-TAG-CASE.npy) and their column titles; "qrow" = Q quantized in the kernel, one scale per row.
OURS = {"u8": "KernelDsl u8", "fp8": "KernelDsl fp8 P·V", "f16": "KernelDsl f16 P·V",
        "u8-qrow": "KernelDsl u8, Q per row", "fp8-qrow": "KernelDsl fp8 P·V, Q per row"}


def accuracy(directory):
    print("| inputs | Sage2 sm90 rel L2 | " + " | ".join(f"{title} rel L2" for title in OURS.values()) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in OURS) + " |")
    for case in CASES:
        q, k, v = (torch.from_numpy(np.load(os.path.join(directory, f"{case}-{n}.npy"))).cuda().double() for n in "qkv")
        p = torch.softmax(q @ k.transpose(-1, -2) * q.size(-1) ** -0.5, dim=-1)
        ref = p @ v
        cells = []
        for name in [f"sage2-{case}"] + [f"ours-{tag}-{case}" for tag in OURS]:
            path = os.path.join(directory, name + ".npy")
            cells.append(f"{rel_l2(torch.from_numpy(np.load(path)).cuda(), ref):.3e}" if os.path.exists(path) else "n/a")
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "time":
        time_sage(sys.argv[2], "--quick" in sys.argv)
    elif command == "inputs":
        make_inputs(sys.argv[2])
    else:
        accuracy(sys.argv[2])
