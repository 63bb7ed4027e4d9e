#!/usr/bin/env python3
"""One markdown table from the JSON lines of `dia bench --json` and `scripts/bench_torch.py --json`.

    (target/release/dia bench --json; python scripts/bench_torch.py --json) > run.jsonl
    python scripts/bench_table.py run.jsonl

Rows are workloads in the order dia ran them; dia / PyTorch is the ratio of images per second.
PyTorch's GFLOP/s uses dia's FLOP count of the same workload (`dia_pipeline::bench::flops`:
2 per multiply-accumulate, a training step as three forward passes). Peak RSS is per process,
over every workload it ran up to and including that row. Standard library only.
"""
import json
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py RUN.jsonl")
    dia, torch = {}, {}
    order = []
    with open(sys.argv[1]) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{sys.argv[1]}:{n}: not JSON: {e}")
            side = dia if r.get("impl") == "dia" else torch
            side[r["workload"]] = r
            if r["workload"] not in order:
                order.append(r["workload"])
    print("| workload | dia img/s | PyTorch img/s | dia / PyTorch | dia GFLOP/s | PyTorch GFLOP/s | dia peak RSS | PyTorch peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for w in order:
        d, t = dia.get(w), torch.get(w)
        cell = lambda r, k, fmt: fmt.format(r[k]) if r and r.get(k) is not None else "–"
        ratio = f"**{d['images_per_s'] / t['images_per_s']:.2f}×**" if d and t else "–"
        flop = d["gflops"] * 1e9 * d["median_s"] if d and d.get("gflops") else None
        tg = f"{flop / t['median_s'] / 1e9:.1f}" if flop and t else "–"
        print(f"| `{w}` | {cell(d, 'images_per_s', '{:.1f}')} | {cell(t, 'images_per_s', '{:.1f}')} | {ratio} "
              f"| {cell(d, 'gflops', '{:.1f}')} | {tg} | {cell(d, 'peak_rss_mib', '{:.0f} MiB')} "
              f"| {cell(t, 'peak_rss_mib', '{:.0f} MiB')} |")


if __name__ == "__main__":
    main()
