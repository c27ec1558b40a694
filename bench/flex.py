"""FlexAttention (torch.compile, BlockMask) on the masked / score-modified variants, and the ratio table against our CSV.

  python3 bench/flex.py time OUT.csv [--seqs 4096,16384] [--heads 16] [--head-dim 128] [--tokens 16384]
                                     [--window 1024] [--cap 30] [--documents 8] [--prefix 1024]
                                     [--variants causal,window,...] [--runs 20] [--warmup 3]
      # FlexAttention (bf16): causal, window, document, alibi, softcap, prefix, dense;
      # torch SDPA (f16, same values): cudnn_dense, cudnn_causal, fa2_dense, fa2_causal.
      # B = tokens // S. Median of --runs CUDA-event timings after --warmup warm-ups (plus one compile call).
      # CSV: peer,variant,seq,batch,heads,head_dim,ms,visible_blocks,visible_elements
      #   visible_blocks   = 1 - BlockMask.sparsity() / 100  (fraction of 128x128 blocks FlexAttention computes)
      #   visible_elements = exact fraction of (q, k) pairs the mask keeps (closed form)
  python3 bench/flex.py join OURS.csv FLEX.csv
      # markdown table per (variant, seq) of OURS.csv (needs variant,seq,kernel_ms,e2e_ms):
      # FlexAttention ms, flex_ms / our_e2e_ms and flex_ms / our_kernel_ms ("x FlexAttention", higher is better for us),
      # and for window: our window ms <= 1.15 x visible-block fraction x our dense ms (same seq).
"""
import argparse
import csv
import math
import sys

import timing

FLEX_VARIANTS = ["causal", "window", "document", "alibi", "softcap", "prefix", "dense"]
SDPA_VARIANTS = ["cudnn_dense", "cudnn_causal", "fa2_dense", "fa2_causal"]
COLUMNS = ["peer", "variant", "seq", "batch", "heads", "head_dim", "ms", "visible_blocks", "visible_elements"]
WINDOW_SLACK = 1.15


# ---------------------------------------------------------------- exact visible-element fractions (pure Python)

def _causal_pairs(n):
    return n * (n + 1) // 2


def document_lengths(s, documents):
    """Lengths of the documents given by doc[i] = i * documents // s (equal when documents divides s)."""
    documents = max(1, min(documents, s))
    bounds = [-(-d * s // documents) for d in range(documents + 1)]  # first i with i * documents // s >= d
    return [bounds[d + 1] - bounds[d] for d in range(documents)]


def visible_elements(variant, s, window, documents, prefix):
    """Exact fraction of the S x S (q, k) pairs the variant's mask keeps."""
    total = s * s
    if variant in ("causal", "alibi", "softcap", "cudnn_causal", "fa2_causal"):
        kept = _causal_pairs(s)
    elif variant == "window":  # q >= k and q - k < window: row q keeps min(q + 1, window)
        w = max(0, min(window, s))
        kept = _causal_pairs(w) + (s - w) * w
    elif variant == "document":
        kept = sum(_causal_pairs(n) for n in document_lengths(s, documents))
    elif variant == "prefix":  # k < prefix or k <= q: row q keeps max(prefix, q + 1), at most s
        p = max(0, min(prefix, s))
        kept = p * p + _causal_pairs(s) - _causal_pairs(p)
    elif variant in ("dense", "cudnn_dense", "fa2_dense"):
        kept = total
    else:
        raise ValueError(variant)
    return kept / total


# ---------------------------------------------------------------- timing (GPU)

def median_ms(fn, runs, warmup):
    """timing.median_ms after one untimed call, which compiles FlexAttention's kernel."""
    import torch

    fn()
    torch.cuda.synchronize()
    return timing.median_ms(fn, runs, warmup)


def _set_dynamo_limits(limit):
    import torch._dynamo

    config = torch._dynamo.config
    # Past the default 8 recompiles dynamo silently falls back to eager (~100x slower): raise the limits, and where
    # the option exists make hitting the limit an error so a variant fails loudly instead of timing eager.
    for name, value in (("recompile_limit", limit), ("cache_size_limit", limit),
                        ("accumulated_recompile_limit", max(256, 4 * limit)),
                        ("accumulated_cache_size_limit", max(256, 4 * limit)),
                        ("fail_on_recompile_limit_hit", True)):
        if hasattr(config, name):
            try:
                setattr(config, name, value)
            except Exception as error:  # noqa: BLE001 - older/newer torch may reject a knob; the others still apply
                print(f"torch._dynamo.config.{name}: {error}", file=sys.stderr)


def _visible_blocks(block_mask):
    if block_mask is None:
        return 1.0
    try:
        # torch 2.x: BlockMask.sparsity() = 100 * (1 - computed (partial + full) blocks * BLOCK^2 / numel)
        return 1.0 - float(block_mask.sparsity()) / 100.0
    except Exception as error:  # noqa: BLE001
        print(f"BlockMask.sparsity(): {error}", file=sys.stderr)
        return float("nan")


def _error_line(error):
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0] if text else type(error).__name__


def time_flex(args):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    variants = args.variants
    _set_dynamo_limits(max(64, 2 * len(FLEX_VARIANTS) * len(args.seqs)))
    flex = torch.compile(flex_attention, dynamic=False)
    sdpa_backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "fa2": SDPBackend.FLASH_ATTENTION}

    window, cap, prefix, documents = args.window, float(args.cap), args.prefix, args.documents
    h, d = args.heads, args.head_dim

    out = open(args.out, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    out.flush()
    print(",".join(COLUMNS), flush=True)

    def emit(peer, variant, s, b, ms, blocks, elements):
        row = [peer, variant, s, b, h, d, f"{ms:.4f}",
               "" if blocks is None else f"{blocks:.6f}", "" if elements is None else f"{elements:.6f}"]
        writer.writerow(row)
        out.flush()
        print(",".join(map(str, row)), flush=True)

    for s in args.seqs:
        b = args.tokens // s
        if b < 1:
            print(f"S={s}: tokens {args.tokens} < S, skipped", file=sys.stderr)
            continue
        torch.manual_seed(s)
        # [B, H, S, D] bf16, fresh per S.
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        # CUDA tensors captured by the mods' closures (Python scalars are captured as constants).
        slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], device="cuda", dtype=torch.float32)
        doc = (torch.arange(s, device="cuda", dtype=torch.int64) * documents // s).to(torch.int32)

        def causal_mask(b_, h_, q_, k_):
            return q_ >= k_

        def window_mask(b_, h_, q_, k_):
            return (q_ >= k_) & (q_ - k_ < window)

        def document_mask(b_, h_, q_, k_):
            return (doc[q_] == doc[k_]) & (q_ >= k_)

        def prefix_mask(b_, h_, q_, k_):
            return (k_ < prefix) | (k_ <= q_)

        def alibi_score(score, b_, h_, q_, k_):
            return score + slopes[h_] * (k_ - q_)

        def softcap_score(score, b_, h_, q_, k_):
            return cap * torch.tanh(score / cap)

        specs = {  # variant: (mask_mod or None, score_mod or None)
            "causal": (causal_mask, None),
            "window": (window_mask, None),
            "document": (document_mask, None),
            "alibi": (causal_mask, alibi_score),
            "softcap": (causal_mask, softcap_score),
            "prefix": (prefix_mask, None),
            "dense": (None, None),
        }
        masks = {}  # one BlockMask per mask_mod, built outside the timing; B, H broadcast (the masks ignore b, h)
        for variant in FLEX_VARIANTS:
            if variant not in variants:
                continue
            mask_mod, score_mod = specs[variant]
            try:
                if mask_mod is not None and mask_mod not in masks:
                    masks[mask_mod] = create_block_mask(mask_mod, None, None, s, s, device="cuda")
                block_mask = masks[mask_mod] if mask_mod is not None else None
                ms = median_ms(lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask), args.runs, args.warmup)
                emit("flex", variant, s, b, ms, _visible_blocks(block_mask),
                     visible_elements(variant, s, window, documents, prefix))
            except Exception as error:  # noqa: BLE001 - report and go on with the other variants
                print(f"flex {variant} S={s}: {_error_line(error)}", file=sys.stderr, flush=True)
        del masks

        if any(v_ in variants for v_ in SDPA_VARIANTS):
            # Same values as the bf16 tensors (bf16 -> f16 is exact for randn-sized values), f16 like sdpa.py.
            q16, k16, v16 = q.half(), k.half(), v.half()
            for variant in SDPA_VARIANTS:
                if variant not in variants:
                    continue
                peer, kind = variant.split("_")
                causal = kind == "causal"
                try:
                    with sdpa_kernel(sdpa_backends[peer]):
                        ms = median_ms(lambda: F.scaled_dot_product_attention(q16, k16, v16, is_causal=causal),
                                       args.runs, args.warmup)
                    emit(peer, variant, s, b, ms, None, visible_elements(variant, s, window, documents, prefix))
                except Exception as error:  # noqa: BLE001
                    print(f"sdpa {variant} S={s}: {_error_line(error)}", file=sys.stderr, flush=True)
            del q16, k16, v16
        del q, k, v, slopes, doc
        torch.cuda.empty_cache()
    out.close()


# ---------------------------------------------------------------- join (pure Python)

def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _key(row, use_head_dim):
    key = (row["variant"].strip(), str(int(float(row["seq"]))))
    if use_head_dim:
        key += (str(int(float(row["head_dim"]))) if _float(row.get("head_dim")) is not None else "",)
    return key


def join(ours_path, flex_path, out=sys.stdout):
    with open(ours_path, newline="") as f:
        ours = list(csv.DictReader(f))
    with open(flex_path, newline="") as f:
        flex_rows = list(csv.DictReader(f))
    use_head_dim = bool(ours) and bool(flex_rows) and "head_dim" in ours[0] and "head_dim" in flex_rows[0]
    flex = {_key(r, use_head_dim): r for r in flex_rows}
    our = {_key(r, use_head_dim): r for r in ours}

    def fmt(x, spec=".3f", suffix=""):
        return "—" if x is None else f"{x:{spec}}{suffix}"

    def ratio(a, b):
        return a / b if a is not None and b else None

    head = "| variant | S |" + (" D |" if use_head_dim else "")
    print(head + " our kernel ms | our e2e ms | FlexAttention ms | vs Flex e2e (flex / our e2e) |"
          " vs Flex kernel (flex / our kernel) | vs Flex, K/V quantized once | window ≤ 1.15 × visible blocks × our dense |", file=out)
    print("|" + " --- |" * (head.count("|") - 1 + 7), file=out)
    for r in ours:
        key = _key(r, use_head_dim)
        kernel, e2e, once = _float(r.get("kernel_ms")), _float(r.get("e2e_ms")), _float(r.get("kv_once_ms"))
        # "window+qrow" is the window variant in the form that quantizes Q per row: the same peer, its own dense row.
        base, _, form = key[0].partition("+")
        peer = flex.get((base,) + key[1:])
        flex_ms = _float(peer["ms"]) if peer else None
        check = ""
        if base == "window":
            dense = our.get(("dense" + ("+" + form if form else ""),) + key[1:])
            blocks = _float(peer.get("visible_blocks")) if peer else None
            parts = []
            for label, ours_ms, dense_ms in (("kernel", kernel, _float(dense.get("kernel_ms")) if dense else None),
                                             ("e2e", e2e, _float(dense.get("e2e_ms")) if dense else None)):
                if ours_ms is None or dense_ms is None or blocks is None:
                    parts.append(f"{label}: —")
                else:
                    bound = WINDOW_SLACK * blocks * dense_ms
                    parts.append(f"{label}: {ours_ms:.3f} ≤ {bound:.3f} "
                                 f"({WINDOW_SLACK} × {blocks:.4f} × {dense_ms:.3f}) {'yes' if ours_ms <= bound else 'NO'}")
            check = "; ".join(parts)
        cells = [key[0], key[1]] + ([key[2] or "—"] if use_head_dim else []) + [
            fmt(kernel), fmt(e2e), fmt(flex_ms),
            fmt(ratio(flex_ms, e2e), ".2f", "×"), fmt(ratio(flex_ms, kernel), ".2f", "×"), fmt(ratio(flex_ms, once), ".2f", "×"), check]
        print("| " + " | ".join(cells) + " |", file=out)


# ---------------------------------------------------------------- command line

def _int_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def _variant_list(text):
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in FLEX_VARIANTS + SDPA_VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; known: {FLEX_VARIANTS + SDPA_VARIANTS}")
    return names


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("time", help="time FlexAttention variants and SDPA, write a CSV")
    t.add_argument("out")
    t.add_argument("--seqs", type=_int_list, default=[4096, 16384])
    t.add_argument("--heads", type=int, default=16)
    t.add_argument("--head-dim", type=int, default=128)
    t.add_argument("--tokens", type=int, default=16384, help="B = tokens // S")
    t.add_argument("--window", type=int, default=1024)
    t.add_argument("--cap", type=float, default=30.0)
    t.add_argument("--documents", type=int, default=8)
    t.add_argument("--prefix", type=int, default=1024)
    t.add_argument("--variants", type=_variant_list, default=FLEX_VARIANTS + SDPA_VARIANTS)
    t.add_argument("--runs", type=int, default=20, help="timed runs (median), at least 20")
    t.add_argument("--warmup", type=int, default=3, help="warm-up runs after the compile call, at least 3")
    j = sub.add_parser("join", help="markdown table: our CSV against the FlexAttention CSV")
    j.add_argument("ours")
    j.add_argument("flex")
    args = parser.parse_args(argv)
    if args.command == "time":
        args.runs, args.warmup = max(20, args.runs), max(3, args.warmup)
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    if arguments.command == "time":
        time_flex(arguments)
    else:
        join(arguments.ours, arguments.flex)
