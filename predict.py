"""Label new, unlabeled text with a trained run's best student.

  python predict.py --run DIR --input texts.txt [--output predictions.tsv] [--gpu 0]

One text per line; a sentence pair is its two texts separated by a tab. Writes a header, then one line per input:
the predicted label name and the probability of every label (classifiers), or the predicted score (regression).
The run's own resolved config (DIR/config.ini) and its best checkpoint (DIR/checkpoints/best.pt) are used, so the
text is tokenised exactly as in training.
"""
import argparse

from process.cli import main_guard


def read_texts(path):
    """[(text_a, text_b or None)] of a UTF-8 file, one example per non-empty line."""
    from utils.errors import DataError
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"--input {path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) > 2:
            raise DataError(f"{path}:{lineno}: expected one text or two separated by one tab, got {len(parts)} fields")
        rows.append((parts[0], parts[1] if len(parts) == 2 else None))
    if not rows:
        raise DataError(f"--input {path}: no text to label")
    return rows


def label_names(config):
    """The run's label names in label-id order ([data] label_list, else GLUE's names for the task), None for
    regression."""
    from dataset.glue_tsv import label_names as names
    return names(config)


def load_run(run_dir, gpu=None):
    """(config, method with its best weights, formatter, device) of a finished run directory."""
    from pathlib import Path

    from init.config import load_config
    from init.registry import lookup, model_list
    from init.word_vocab import build_word_vocab
    from process.checkpoint import find_checkpoint
    from process.distributed import setup
    from process.init_process import formatter_class
    from utils.errors import ConfigError
    resolved = Path(run_dir) / "config.ini"
    if not resolved.is_file():
        raise ConfigError(f"--run {run_dir}: no config.ini (not a run directory made by train.py)")
    config = load_config(resolved)
    info = setup(False, gpu)
    method = lookup(model_list, config, "model", "model_name")
    if method.two_tower or method.uses_teacher_table or config.get("model", "num_labels") < 1:
        raise ConfigError(f"--run {run_dir}: model '{config.get('model', 'model_name')}' does not label texts; "
                          "predict.py covers classifiers and regressors")
    formatter_cls = formatter_class(config)
    word_vocab = build_word_vocab(config) if formatter_cls.reads_word_vocab else None
    formatter = formatter_cls(config, "test", word_vocab) if word_vocab is not None else formatter_cls(config, "test")
    model = method(config, word_vocab=word_vocab) if method.reads_word_ids else method(config)
    _, state = find_checkpoint(run_dir, prefer_best=True)
    model.load_trainable(state)
    return config, model.to(info.device).eval(), formatter, info.device


def predict(run_dir, texts, gpu=None):
    """(label names or None, (N, labels) probabilities or (N,) scores) for [(text_a, text_b)]."""
    import torch

    from process.eval_process import to_device
    config, model, formatter, device = load_run(run_dir, gpu)
    size, outputs = config.get("eval", "batch_size"), []
    with torch.inference_mode():
        for start in range(0, len(texts), size):
            rows = texts[start:start + size]
            batch = formatter([{"text_a": a, "text_b": b, "label": None, "index": start + i} for i, (a, b) in enumerate(rows)])
            outputs.append(model(to_device(batch, device))["logits"].float().cpu())
    logits = torch.cat(outputs)
    names = label_names(config)
    return (names, logits.softmax(-1)) if names else (None, logits.squeeze(-1))


def format_lines(names, values):
    if names is None:
        return ["score"] + [f"{float(v):.6f}" for v in values]
    header = "label\t" + "\t".join(f"p({name})" for name in names)
    return [header] + [names[int(p.argmax())] + "\t" + "\t".join(f"{float(x):.6f}" for x in p) for p in values]


def main():
    parser = argparse.ArgumentParser(description="Label new text with a trained run's best student.")
    parser.add_argument("--run", required=True, help="run directory written by train.py (a pipeline's stage directory)")
    parser.add_argument("--input", required=True, help="UTF-8 file, one text per line (a pair: two texts and a tab)")
    parser.add_argument("--output", help="write the predictions here (TSV) instead of printing them")
    parser.add_argument("--gpu", "-g", default=None, help="a GPU id; omit to run on CPU")
    args = parser.parse_args()
    names, values = predict(args.run, read_texts(args.input), args.gpu)
    text = "\n".join(format_lines(names, values)) + "\n"
    if args.output:
        from process.run_dir import write_text
        write_text(args.output, text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main_guard(main)
