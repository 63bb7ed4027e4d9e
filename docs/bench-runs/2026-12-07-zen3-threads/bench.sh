#!/bin/bash
# Two bench runs on this machine (a 2-vCPU AMD EPYC Zen 3, AVX2 + FMA, no AVX-512), both sides
# in one command each, PyTorch first in run 2 (docs/benchmarks.md). Without AVX-512 both sides
# run AVX2 already: dia_nn::isa detects AVX2, and PyTorch's ATen, oneDNN and MKL dispatch to
# AVX2 (bench_torch.py reports "isa": "default"). dia sets candle's CANDLE_BARRIER_POOL_SPIN_LIMIT
# to 0 itself (dia_nn::tune_threads); this script sets nothing.
set -u
cd "$(dirname "$0")/../../.."
D=docs/bench-runs/2026-12-07-zen3-threads
PY=${PY:-/tmp/torchvenv/bin/python}
date; lscpu | grep -E 'Model name|CPU family|^Model:'
(target/release/dia bench --json --runs 7 --warmup 3; $PY scripts/bench_torch.py --json --runs 7 --warmup 3) > $D/run1.jsonl
date
($PY scripts/bench_torch.py --json --runs 7 --warmup 3; target/release/dia bench --json --runs 7 --warmup 3) > $D/run2.jsonl
date
