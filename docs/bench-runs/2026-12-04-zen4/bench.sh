#!/bin/bash
# Four bench runs on this machine, both sides in one command each (docs/benchmarks.md).
set -u
cd /work/main
D=docs/bench-runs/2026-12-04-zen4
mkdir -p $D
PY=/work/torchenv/bin/python
date
(target/release/dia bench --json --runs 7 --warmup 3; $PY scripts/bench_torch.py --json --runs 7 --warmup 3) > $D/run1.jsonl
date
($PY scripts/bench_torch.py --json --runs 7 --warmup 3; target/release/dia bench --json --runs 7 --warmup 3) > $D/run2.jsonl
date
(export DIA_ISA=avx2 ATEN_CPU_CAPABILITY=avx2; target/release/dia bench --json --runs 7 --warmup 3; $PY scripts/bench_torch.py --json --runs 7 --warmup 3) > $D/avx2-run-a.jsonl
date
(export DIA_ISA=avx2 ATEN_CPU_CAPABILITY=avx2; $PY scripts/bench_torch.py --json --runs 7 --warmup 3; target/release/dia bench --json --runs 7 --warmup 3) > $D/avx2-run-b.jsonl
date
