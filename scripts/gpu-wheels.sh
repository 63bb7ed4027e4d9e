#!/usr/bin/env bash
# Downloads, here, the wheels scripts/gpu-check.sh installs on the GPU machine (which has torch
# but no network): denoising_diffusion_pytorch 0.27.12 (for bench_torch.py's unet workload)
# and what it imports that the machine may lack. Into .whl/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for pkg in denoising_diffusion_pytorch==0.27.12 ema-pytorch==0.7.7 einops==0.8.1 \
    accelerate==1.10.1 pytorch-fid==0.3.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl "$pkg"
done
ls -l .whl
