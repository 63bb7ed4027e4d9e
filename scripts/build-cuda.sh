#!/usr/bin/env bash
# Builds the CUDA `dia` binary on a machine without a GPU or a system CUDA toolkit, from
# NVIDIA's CUDA 13 Python wheels (facts in shared/spec/gpu-build.md, user guide in docs/gpu.md).
#
#   scripts/build-cuda.sh            # -> target/cuda/dia (stripped) and target/cuda/dia.xz
#
# Environment (all optional):
#   DIA_CUDA_VENV        where the wheels are installed      (default: target/cuda-venv)
#   CUDA_COMPUTE_CAP     GPU architecture to compile for     (default: 90, Hopper / H200)
#   DIA_CUDA_OUT         folder of the finished binary       (default: target/cuda)
#   PYTHON               the Python that makes the venv      (default: python3)
#
# The build links against a stub `libcuda.so` (the driver library, which no wheel ships). The
# stub lives inside the venv, never beside the binary: on the GPU machine the real driver's
# libcuda.so.1 must be found instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VENV=${DIA_CUDA_VENV:-$ROOT/target/cuda-venv}
OUT=${DIA_CUDA_OUT:-$ROOT/target/cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
PYTHON=${PYTHON:-python3}
start=$(date +%s)

# 1. The CUDA 13.0 toolchain and libraries, pinned (the -cu12 nvcc wheels carry no nvcc).
WHEELS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
    nvidia-curand==10.4.0.35
    nvidia-cublas==13.1.0.3
)
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing ${#WHEELS[@]} CUDA wheels"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${WHEELS[@]}"
CUDA=$("$VENV/bin/python" -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$CUDA/bin/nvcc" ] || { echo "error: no nvcc in $CUDA/bin" >&2; exit 1; }
"$CUDA/bin/nvcc" --version | tail -2

# 2. Unversioned names for the linker (the wheels ship only libX.so.N).
for lib in "$CUDA"/lib/lib*.so.*; do
    base=$(basename "$lib")
    plain=${base%%.so.*}.so
    [ -e "$CUDA/lib/$plain" ] || ln -s "$base" "$CUDA/lib/$plain"
done

# 3. A link-time stub of the driver library: one empty function per symbol cudarc binds.
CUDARC=$(cargo metadata --format-version 1 --locked --features dia-cli/cuda | "$VENV/bin/python" -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(p["manifest_path"] for p in pkgs if p["name"] == "cudarc").rsplit("/", 1)[0])')
mkdir -p "$CUDA/lib/stubs"
if [ ! -e "$CUDA/lib/stubs/libcuda.so" ]; then
    grep -o 'load::<_F>("cu[A-Za-z0-9_]*")' "$CUDARC/src/driver/sys/mod.rs" \
        | sed 's/.*("\(.*\)")/\1/' | sort -u \
        | sed 's/.*/int &(void) { return 999; }/' > "$CUDA/lib/stubs/libcuda-stub.c"
    echo "== libcuda stub with $(wc -l < "$CUDA/lib/stubs/libcuda-stub.c") symbols"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA/lib/stubs/libcuda.so" \
        "$CUDA/lib/stubs/libcuda-stub.c"
fi

# 4. The build.
export PATH="$CUDA/bin:$PATH"
export CUDA_HOME="$CUDA" CUDA_PATH="$CUDA" CUDA_ROOT="$CUDA"
export LIBRARY_PATH="$CUDA/lib:$CUDA/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$CUDA/include:$CUDA/include/cccl${CPATH:+:$CPATH}"
echo "== cargo build --release -p dia-cli --features cuda (compute capability $CUDA_COMPUTE_CAP)"
# A target folder of its own: the CPU build's artefacts (candle without CUDA) stay valid.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/cuda-build}
cargo build --release --locked -p dia-cli --features cuda

# 5. The binary, stripped, and an xz copy small enough to carry.
mkdir -p "$OUT"
cp "$CARGO_TARGET_DIR/release/dia" "$OUT/dia.tmp"
strip "$OUT/dia.tmp"
mv "$OUT/dia.tmp" "$OUT/dia"
xz -T0 -6 -c "$OUT/dia" > "$OUT/dia.xz.tmp"
mv "$OUT/dia.xz.tmp" "$OUT/dia.xz"
# Record what the binary needs at run time and which libraries the wheels held.
{
    echo "built: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "compute capability: $CUDA_COMPUTE_CAP"
    "$CUDA/bin/nvcc" --version | tail -1
    echo "needed libraries:"
    readelf -d "$OUT/dia" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  \1/p'
} > "$OUT/BUILD-INFO.txt.tmp"
mv "$OUT/BUILD-INFO.txt.tmp" "$OUT/BUILD-INFO.txt"

# 6. Smoke test without a GPU: with the stub standing in for the driver (in a temporary
#    folder, never beside the binary), the binary starts, `--device auto` falls back to the
#    CPU, and `--device cuda` fails with a message instead of a crash.
SMOKE=$(mktemp -d)
ln -s "$CUDA/lib/stubs/libcuda.so" "$SMOKE/libcuda.so.1"
run_smoke() { LD_LIBRARY_PATH="$CUDA/lib:$SMOKE" "$OUT/dia" "$@"; }
run_smoke --version
run_smoke bench csi-score --runs 1 --warmup 0 --device auto > "$SMOKE/out" 2>&1 || true
grep -q "device: cpu" "$SMOKE/out" \
    || { cat "$SMOKE/out" >&2; echo "error: the CUDA build did not fall back to the CPU" >&2; exit 1; }
if run_smoke bench csi-score --device cuda > "$SMOKE/out" 2>&1; then
    echo "error: --device cuda succeeded against the stub driver" >&2; exit 1
fi
grep -q "cannot open CUDA device 0" "$SMOKE/out" || { cat "$SMOKE/out" >&2; exit 1; }
rm -rf "$SMOKE"
echo "== smoke test passed (starts, falls back to the CPU, refuses cuda without a driver)"

end=$(date +%s)
echo "== done in $((end - start)) s"
ls -l "$OUT/dia" "$OUT/dia.xz"
cat "$OUT/BUILD-INFO.txt"
