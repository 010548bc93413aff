"""The peer for static students: Model2Vec's `distill` of a local sentence-transformers folder, saved in its format.

Model2Vec 0.10's distill extra pins transformers < 5.4, older than ours, so it runs from a venv of its own:

  python -m venv .venv-model2vec && . .venv-model2vec/bin/activate
  pip install torch==2.13.0 "model2vec[distill]==0.10.0" scikit-learn
  python experiments/model2vec_distill.py --model <all-MiniLM-L6-v2 folder> --pca_dims 256 --out models/m2v_minilm_pca256
  python experiments/model2vec_distill.py --model <all-MiniLM-L6-v2 folder> --pca_dims none --out models/m2v_minilm_full

The folder it writes loads with plain `model2vec` (no extra) in the project's venv, where it is evaluated beside our
students. Its defaults are kept (SIF weighting 1e-4, mean pooling, float16 storage); only pca_dims varies."""
import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local sentence-transformers folder (no hub)")
    parser.add_argument("--pca_dims", default="256", help="an int, or none (no PCA)")
    parser.add_argument("--out", required=True, help="the folder to write (refused if it exists)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"--out {out}: exists; remove it or name another folder")
    if not Path(args.model).is_dir():
        raise SystemExit(f"--model {args.model}: not a folder (Model2Vec would try the hub)")
    from model2vec.distill import distill
    pca = None if args.pca_dims.lower() == "none" else int(args.pca_dims)
    start = time.perf_counter()
    model = distill(model_name=args.model, pca_dims=pca, device="cpu")
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0o700 would keep the folder from other users
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rows, width = model.embedding.shape
    print(f"{out}: {rows} x {width} = {rows * width:,} parameters, distilled in {seconds:.0f} s")


if __name__ == "__main__":
    main()
