#!/usr/bin/env python3
"""Summarizes `ncu --page source --print-source sass --csv` output: the SASS instructions with the most warp-stall
samples, each with its leading stall reasons, and the kernel's totals per reason. Used by gpu-profile (SOURCE=1).
    python3 ncu-hotspots.py ncu-source.csv [top]"""
import csv, io, sys

path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
text = open(path, encoding="utf-8", errors="replace").read()
# ncu prints its own lines (==PROF==, the application's output) before the CSV: start at the header row.
start = text.find('"Address"')
if start < 0:
    sys.exit(f"{path}: no per-instruction table (no \"Address\" column)")
rows = list(csv.reader(io.StringIO(text[start:])))
header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
def number(x):
    try:
        return float(x.replace(",", ""))
    except ValueError:
        return 0.0
samples = next((i for i, h in enumerate(header) if h.startswith("Warp Stall Sampling (All")), None)
if samples is None:
    sys.exit(f"{path}: no warp-stall sampling column; columns: {header}")
source = header.index("Source")
# Per-reason columns (stall_long_sb, ...), the "not issued" twins left out.
reasons = [i for i, h in enumerate(header) if h.startswith("stall_") and "Not Issued" not in h]
if not reasons:
    reasons = [i for i, h in enumerate(header) if "Stall" in h and i != samples and "Not-issued" not in h and "Not Issued" not in h]
total = sum(number(r[samples]) for r in body)
print(f"{len(body)} instructions, {total:.0f} stall samples")
print("reason totals: " + ", ".join(f"{header[i]} {sum(number(r[i]) for r in body):.0f}" for i in sorted(reasons, key=lambda i: -sum(number(r[i]) for r in body))[:10]))
print()
print("address | samples | % | leading reasons | SASS")
for r in sorted(body, key=lambda r: -number(r[samples]))[:top]:
    lead = sorted(((number(r[i]), header[i]) for i in reasons), reverse=True)[:3]
    print(f"{r[0]} | {number(r[samples]):.0f} | {100 * number(r[samples]) / max(total, 1):.1f} | "
          + ", ".join(f"{n} {v:.0f}" for v, n in lead if v > 0) + f" | {r[source].strip()[:90]}")
