"""torch SDPA on the standard grid, timed like samples/Bench, and the ratio table against our CSV.

  python3 bench/sdpa.py time out.csv [--quick]      # flash, cuDNN and efficient backends, f16
  python3 bench/sdpa.py join ours.csv sdpa.csv [sage.csv]   # markdown table: our TOPS / each peer's TOPS
"""
import csv
import sys

from timing import median_ms


def time_sdpa(path, quick):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    lengths = [1024, 4096, 16384] if quick else [1024, 2048, 4096, 8192, 16384]
    rows = []
    for d in (64, 128):
        for s in lengths:
            b, h = 16384 // s, 2048 // d
            # [B, H, S, D] f16; each tensor is 64 MB, more than the H100's 50 MB L2.
            q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for _ in range(3))
            for causal in (False, True):
                for name, backend in backends.items():
                    try:
                        with sdpa_kernel(backend):
                            ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                        ops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
                        rows.append([name, d, s, causal, f"{ms:.3f}", f"{ops / ms / 1e9:.3f}"])
                    except RuntimeError as error:
                        print(f"{name} D={d} S={s} causal={causal}: {error}".splitlines()[0], file=sys.stderr)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["backend", "head_dim", "seq", "causal", "ms", "tops"])
        writer.writerows(rows)
    for row in rows:
        print(",".join(map(str, row)))


def join(ours_path, *peer_paths):
    peers = {}
    for path in peer_paths:
        with open(path) as f:
            peers.update({(r["backend"], r["head_dim"], r["seq"], r["causal"]): float(r["tops"]) for r in csv.DictReader(f)})
    sage = any(key[0] == "sage2" for key in peers)
    print("| variant | D | S | causal | kernel TOPS | e2e TOPS | vs flash (FA2) kernel / e2e | vs cuDNN kernel / e2e | vs efficient kernel / e2e |"
          + (" vs Sage2 kernel / e2e |" if sage else "") + " K/V quantized once: TOPS, vs cuDNN |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if sage else "") + " --- |")
    with open(ours_path) as f:
        for r in csv.DictReader(f):
            key = (r["head_dim"], r["seq"], r["causal"])
            kernel, e2e = float(r["kernel_tops"]), float(r["end_to_end_tops"])
            cells = []
            for backend in ("flash", "cudnn", "efficient"):
                peer = peers.get((backend,) + key)
                cells.append(f"{kernel / peer:.2f}× / {e2e / peer:.2f}×" if peer else "n/a")
            if sage:
                # Like for like: our kernel against Sage2's kernel, our end to end against its end to end.
                peer_kernel, peer_e2e = peers.get(("sage2",) + key), peers.get(("sage2-e2e",) + key)
                cells.append(f"{kernel / peer_kernel:.2f}× / {e2e / peer_e2e:.2f}×" if peer_kernel and peer_e2e else "n/a")
            once, cudnn = r.get("kv_once_tops") or "", peers.get(("cudnn",) + key)
            cells.append(f"{float(once):.0f}, {float(once) / cudnn:.2f}×" if once and cudnn else "n/a")
            print(f"| {r['variant']} | {r['head_dim']} | {r['seq']} | {'yes' if r['causal'] == 'True' else 'no'} | {kernel:.0f} | {e2e:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "time":
        time_sdpa(sys.argv[2], "--quick" in sys.argv)
    else:
        join(sys.argv[2], *sys.argv[3:])
