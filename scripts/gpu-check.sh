#!/usr/bin/env bash
# The GPU checks of issue #14 in one run on the project's GPU machine (docs/gpu.md): the CUDA
# binary built here by scripts/build-cuda.sh, beside PyTorch on the same GPU.
#
# Here first:  scripts/build-cuda.sh                       (-> target/cuda/dia.xz)
#              scripts/gpu-wheels.sh                       (-> .whl/, the DDPM library for torch)
# Then:        device run, command "bash scripts/gpu-check.sh",
#              carry ["target/cuda/dia.xz", ".whl"], timeout_s 540
# Writes under $OUT: log.txt, nvidia-smi.txt, dia-bench.jsonl, torch-bench.jsonl,
# run-cpu/, run-cuda/ (metrics and reports) and compare.txt.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
step() { echo; echo "== $* ($(date +%T))"; }

step "GPU, driver, CUDA"
nvidia-smi | tee "$OUT/nvidia-smi.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
command -v nvcc >/dev/null && nvcc --version | tail -2
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

step "unpacking the CUDA dia"
xz -dc target/cuda/dia.xz > /tmp/dia && chmod +x /tmp/dia || exit 1
# The CUDA 13 libraries of the machine's Python packages (torch's own), found by name.
SITE=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])')
LIBS=$(find "$SITE" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd /tmp/dia | grep -E 'cuda|cublas|curand|nvrtc|not found'
/tmp/dia --version || exit 1

if [ -d .whl ]; then
    step "installing the carried wheels"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi

step "(a) dia bench on cuda"
timeout 200 /tmp/dia bench --device cuda --json --runs 20 --warmup 5 | tee "$OUT/dia-bench.jsonl"
step "(a) PyTorch on the same GPU"
timeout 150 python3 scripts/bench_torch.py --device cuda --json --runs 20 --warmup 5 \
    | tee "$OUT/torch-bench.jsonl"

step "(b) a tiny dia train + dia eval on cpu and on cuda"
for d in cpu cuda; do
    timeout 120 /tmp/dia train --config configs/gpu-check.yaml --run "$OUT/run-$d" --device "$d"
    timeout 60 /tmp/dia eval --run "$OUT/run-$d" --ood-samples 2 --device "$d"
done

step "comparison"
python3 - "$OUT" <<'PY' | tee "$OUT/compare.txt"
import json, sys, os
out = sys.argv[1]
def losses(d):
    rows = open(os.path.join(out, d, "metrics.csv")).read().splitlines()[1:]
    return [float(r.split(",")[2]) for r in rows]
def auroc(d):
    return json.load(open(os.path.join(out, d, "eval", "report.json")))["pooled"]["auroc"]
lc, lg = losses("run-cpu"), losses("run-cuda")
worst = max(abs(a - b) / max(abs(a), 1.0) for a, b in zip(lc, lg))
ac, ag = auroc("run-cpu"), auroc("run-cuda")
print(f"losses: {len(lc)} steps, worst relative difference {worst:.2e} (goal 1e-3): {'ok' if worst <= 1e-3 and len(lc) == len(lg) else 'FAIL'}")
print(f"AUROC: cpu {ac:.4f}, cuda {ag:.4f}, difference {abs(ac - ag):.2e} (goal 1e-3): {'ok' if abs(ac - ag) <= 1e-3 else 'FAIL'}")
def table(p):
    return {j["workload"]: j for j in map(json.loads, open(p)) if "workload" in j}
try:
    d, t = table(os.path.join(out, "dia-bench.jsonl")), table(os.path.join(out, "torch-bench.jsonl"))
    for w in d:
        if w in t:
            r = d[w]["images_per_s"] / t[w]["images_per_s"]
            print(f"{w:<26} dia {d[w]['images_per_s']:>10.1f}  torch {t[w]['images_per_s']:>10.1f} img/s  ratio {r:.2f}x")
except FileNotFoundError as e:
    print("bench:", e)
PY
