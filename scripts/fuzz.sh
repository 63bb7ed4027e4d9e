#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (issue #19) with cargo fuzz (libFuzzer, nightly):
# IDX, NPY/NPZ, safetensors, PyTorch zip/pickle, YAML configs. Seeds are built from the
# repository's own files. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Findings land in fuzz/artifacts/<target>/, full output in fuzz/logs/ (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(idx npy_npz safetensors pytorch yaml_config)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seed() { mkdir -p "fuzz/corpus/$1"; cp "${@:2}" "fuzz/corpus/$1/" 2>/dev/null || true; }
sample=datasets/fashion-mnist-sample
seed idx "$sample"/t10k-labels-idx1-ubyte.gz
python3 - <<'PY'
import gzip, os, struct, zipfile
os.makedirs("fuzz/corpus/idx", exist_ok=True)
os.makedirs("fuzz/corpus/npy_npz", exist_ok=True)
os.makedirs("fuzz/corpus/safetensors", exist_ok=True)
os.makedirs("fuzz/corpus/pytorch", exist_ok=True)
raw = gzip.open("datasets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz").read()
n = 4
open("fuzz/corpus/idx/images4.idx", "wb").write(raw[:4] + struct.pack(">III", n, 28, 28) + raw[16:16 + n * 784])
def npy(descr, shape, data):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }\n" % (descr, shape)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data
open("fuzz/corpus/npy_npz/f4.npy", "wb").write(npy("<f4", "(1, 3, 2, 2)", b"\0\0\0?" * 12))
for name, method in [("stored.npz", zipfile.ZIP_STORED), ("deflated.npz", zipfile.ZIP_DEFLATED)]:
    with zipfile.ZipFile("fuzz/corpus/npy_npz/" + name, "w", method) as z:
        for split in ["train", "test"]:
            z.writestr(split + "_images.npy", npy("|u1", "(2, 2, 2)", bytes(8)))
            z.writestr(split + "_labels.npy", npy("<i8", "(2, 1)", bytes(16)))
PY
seed safetensors crates/dia-encoder/tests/fixtures/*.safetensors
find crates -path '*fixtures*' -size -200k -name '*.safetensors' -exec cp {} fuzz/corpus/safetensors/ \;
find crates -path '*fixtures*' -size -2M \( -name '*.pth' -o -name '*.pt' -o -name '*.model' \) -exec cp {} fuzz/corpus/pytorch/ \;
seed yaml_config configs/*.yaml
cargo +nightly fuzz build --fuzz-dir fuzz
mkdir -p fuzz/logs
status=0
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s (full output: fuzz/logs/$t.log)"
  # A crash stops this target (its input lands in fuzz/artifacts/$t/); the others still run.
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      > "fuzz/logs/$t.log" 2>&1; then
    status=1
    grep -E "panicked|ERROR|SUMMARY|Reproduce|artifact" "fuzz/logs/$t.log" | head -n 8
  fi
  grep -E "^Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "fuzz/logs/$t.log" || true
done
exit $status
