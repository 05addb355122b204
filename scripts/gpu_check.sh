#!/usr/bin/env bash
# The checks that need an accelerator, in one short run (CI has none):
#   1. the whole test suite where CUDA is visible, so accelerate places every backbone, the
#      tiny LLM's SFT and stage 2 on the GPU (bf16 autocast is real there, unlike on CPUs);
#   2. the ML-100K backbone benchmark on the GPU: seconds to the best epoch and test figures.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (logs, JSON and runs; default runs/gpu-check)
# Needs the package importable (pip install -e . or PYTHONPATH=src) and recbole==1.2.1
# installed for ML-100K. Exits non-zero if either step fails or runs out of time.
set -uo pipefail
out=${1:-runs/gpu-check}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L || echo "no NVIDIA GPU visible"
python3 - <<'PY' | tee "$out/versions.txt"
import accelerate, peft, torch, transformers
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, transformers "
      f"{transformers.__version__}, peft {peft.__version__}, accelerate {accelerate.__version__}")
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
rc=0
timeout "${TEST_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider 2>&1 \
    | tee "$out/pytest.log" | tail -25 || rc=$?
timeout "${BENCH_TIMEOUT:-240}" python3 benchmarks/backbones.py --config configs/ml-100k.yaml \
    --backbone sasrec gru4rec bert4rec --out "$out" --set output_dir="$out/ml-100k" 2>&1 \
    | tee "$out/bench.log" | tail -40 || rc=$?
exit $rc
