#!/usr/bin/env bash
# The GPU check (issue 9): every shipped preset at 1920x1080, 300 frames, on CUDA and on TensorRT, frames
# kept on the device; results in benchmarks/results/gpu-cuda.json and gpu-tensorrt.json. Under 5 minutes.
#
#   benchmarks/gpu/check.sh                  # on a CUDA machine
#   benchmarks/gpu/check.sh --provider cpu   # dry run anywhere: the same device path on "cpu" (640x360, 30 frames)
#   benchmarks/gpu/check.sh --help           # the driver's options (benchmarks/gpu/check.py)
#
# Python: $PYTHON, else the repository's .venv, else python3. When its onnxruntime lists no CUDA provider
# (and this is not the dry run), a venv with onnxruntime-gpu is made in .venv-gpu; without network that
# fails, and the script says so and exits 3.
set -euo pipefail
cd "$(dirname "$0")/../.."

dry=0
for arg in "$@"; do
  [ "$arg" = "cpu" ] && dry=1
  [ "$arg" = "--provider=cpu" ] && dry=1
  case "$arg" in -h|--help) dry=1 ;; esac
done

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x .venv/bin/python ]; then echo .venv/bin/python
  elif [ -x .venv-gpu/bin/python ]; then echo .venv-gpu/bin/python
  else command -v python3
  fi
}
PY=$(pick_python)

providers() {
  "$1" -c 'import onnxruntime as o; print(",".join(o.get_available_providers()))' 2>/dev/null || echo "none"
}

have=$(providers "$PY")
echo "python: $PY; its onnxruntime providers: $have"
if [ "$dry" = 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "error: no NVIDIA GPU here (nvidia-smi finds none); run with --provider cpu for the dry run" >&2
    exit 4
  fi
  nvidia-smi -L
  if [[ "$have" != *CUDAExecutionProvider* ]]; then
    echo "no CUDA provider in that onnxruntime: making .venv-gpu with onnxruntime-gpu"
    python3 -m venv .venv-gpu
    if ! .venv-gpu/bin/pip install -q --upgrade pip \
        || ! .venv-gpu/bin/pip install -q -e . 'onnxruntime-gpu[cuda,cudnn]'; then
      echo "error: could not install onnxruntime-gpu into .venv-gpu (no network to PyPI?); install it by hand" \
           "(pip install onnxruntime-gpu) or carry a venv that has it, then rerun" >&2
      exit 3
    fi
    .venv-gpu/bin/pip uninstall -q -y onnxruntime >/dev/null 2>&1 || true  # the CPU wheel would shadow the GPU one
    .venv-gpu/bin/pip install -q -U --force-reinstall --no-deps 'onnxruntime-gpu' \
      || echo "note: could not reinstall onnxruntime-gpu after removing the CPU wheel"
    .venv-gpu/bin/pip install -q tensorrt-cu12 \
      || echo "note: TensorRT's libraries did not install: the TensorRT runs will report the fallback"
    PY=.venv-gpu/bin/python
    have=$(providers "$PY")
    echo "now: $have"
    if [[ "$have" != *CUDAExecutionProvider* ]]; then
      echo "error: onnxruntime-gpu installed but lists no CUDA provider ($have)" >&2
      exit 3
    fi
  fi
  # TensorRT engines and timing caches, and optimised models, kept between runs: a second check starts fast.
  export LIVEFUSE_CACHE_DIR="${LIVEFUSE_CACHE_DIR:-$PWD/benchmarks/gpu/.cache}"
fi
# Five minutes in all, setup included: the driver stops starting runs when its share is spent.
budget=()
[[ " $* " == *" --budget-s"* ]] || budget=(--budget-s "$((260 - SECONDS))")
exec timeout "$((295 - SECONDS))" "$PY" benchmarks/gpu/check.py "${budget[@]}" "$@"
