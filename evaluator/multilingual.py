"""Sentence-embedding metrics for the multilingual methods, per set (group) of the split:
- translation / Tatoeba retrieval accuracy, both directions (`<set>_src2tgt`: for each source sentence, is its
  own translation the nearest target by cosine; `<set>_tgt2src` the reverse), as in LASER and
  sentence-transformers' TranslationEvaluator;
- teacher-student MSE (`<set>_mse`): student embedding of the target sentence vs the teacher's of its source;
- STS Spearman (`<set>_spearman`) of cos(student(sentence1), student(sentence2)) against the gold score.
Aggregates: `accuracy` (mean retrieval accuracy), `mse`, `spearman` (means over sets of that kind).

Input: logits (N, 3H) = [student source | student target | teacher source] (model/parts/sentence_embedding.py),
labels (N, 2) = [group number, score or nan] (dataset/parallel.py)."""
import numpy as np

from dataset.parallel import group_names, parse_sets, read_tsv
from evaluator.metrics import EMPTY_MSG, spearman


def normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_accuracy(queries, candidates):
    """Fraction of rows i whose most cosine-similar candidate is candidate i."""
    sims = normalise(queries) @ normalise(candidates).T
    return float(np.mean(sims.argmax(axis=1) == np.arange(len(queries))))


class MultilingualEvaluator:
    main_metric = "accuracy"

    def __init__(self, config=None):
        self.names = group_names(config) if config is not None else []
        valid = config.get("data", "valid_file") if config is not None else ""
        if valid and all(k == "tsv" and self._is_sts(config, p) for k, p in parse_sets(valid, "[data] valid_file")):
            self.main_metric = "spearman"

    @staticmethod
    def _is_sts(config, paths):
        from utils.paths import data_root, resolve
        try:
            return read_tsv(resolve(paths[0], data_root(config)))[1] is not None
        except Exception:  # the dataset reports unreadable files itself
            return False

    def name(self, group):
        return self.names[group] if group < len(self.names) else f"set{group}"

    def details(self, logits, labels, names=None):
        """No per-class table: not a classification over label names."""
        return None

    def __call__(self, logits, labels):
        logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        if logits.shape[0] == 0:
            raise ValueError(EMPTY_MSG)
        if logits.ndim != 2 or logits.shape[1] % 3:
            raise ValueError(f"expected (N, 3H) embeddings [student source | student target | teacher source], got {logits.shape}")
        s_src, s_tgt, t_src = np.split(logits, 3, axis=1)
        out, acc, mse, rho = {}, [], [], []
        for group in sorted(set(labels[:, 0].astype(int))):
            rows = labels[:, 0].astype(int) == group
            name = self.name(group)
            scores = labels[rows, 1]
            if np.isnan(scores).all():
                out[f"{name}_src2tgt"] = retrieval_accuracy(s_src[rows], s_tgt[rows])
                out[f"{name}_tgt2src"] = retrieval_accuracy(s_tgt[rows], s_src[rows])
                out[f"{name}_mse"] = float(np.mean((s_tgt[rows] - t_src[rows]) ** 2))
                acc += [out[f"{name}_src2tgt"], out[f"{name}_tgt2src"]]
                mse.append(out[f"{name}_mse"])
            else:
                cos = np.sum(normalise(s_src[rows]) * normalise(s_tgt[rows]), axis=1)
                out[f"{name}_spearman"] = spearman(cos, scores)
                rho.append(out[f"{name}_spearman"])
        for key, values in (("accuracy", acc), ("mse", mse), ("spearman", rho)):
            if values:
                out[key] = float(np.mean(values))
        return out
