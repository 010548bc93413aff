"""LTD (model/ltd.py): the IDF and the weighted mean against formulas written out here, the teacher-initialised table,
the export that plain sentence-transformers loads, the segmenters (jieba on Chinese sentences), one-line config
errors, and a tiny train.py run of the quickstart config."""
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from formatter.idf_vocab import IdfVocab
from formatter.segmenters import make_segmenter
from init.config import load_config_text
from init.word_vocab import build_word_vocab
from model.parts.ltd_student import LtdStudent
from process.distributed import DistInfo
from process.init_process import init_all
from tests.helpers import FILLER, NEG, POS, REPO, make_tokenizer, tiny_config_text
from utils.errors import ConfigError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILLER


def write_sentence_teacher(path, hidden=32):
    """A tiny random BERT saved as a SentenceTransformer (Transformer -> mean pooling -> Normalize)."""
    from transformers import BertConfig, BertModel
    from model.parts.sentence_embedding import write_sentence_transformers_files
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(path)
    make_tokenizer(VOCAB).save_pretrained(path)
    write_sentence_transformers_files(path, hidden, 16, normalize=True)
    return path


def write_sts(path):
    rows = [("the movie was good", "a good film", 4.0), ("the plot was dull", "the acting was superb", 1.0),
            ("a really fun story", "a fun film", 3.5), ("very boring acting", "the acting was weak", 3.0),
            ("quite a lovely film", "the movie was awful", 0.5), ("the story and the plot", "a great plot", 2.0)]
    text = "index\tsentence1\tsentence2\tscore\n" + "".join(f"{i}\t{a}\t{b}\t{s}\n" for i, (a, b, s) in enumerate(rows))
    (path / "train.tsv").write_text(text)
    (path / "dev.tsv").write_text(text)
    return path


@pytest.fixture(scope="module")
def sentence_teacher(tmp_path_factory):
    return write_sentence_teacher(tmp_path_factory.mktemp("st_teacher"))


@pytest.fixture(scope="module")
def sts(tmp_path_factory):
    return write_sts(tmp_path_factory.mktemp("sts"))


def embedding_config(teacher, data, **ltd):
    """An ltd_embedding run on the STS pairs of `data`; the teacher-embedding cache lives in data/cache."""
    return load_config_text(tiny_config_text(teacher, data, "ltd_embedding", data={
        "train_dataset_type": "parallel", "valid_dataset_type": "parallel", "test_dataset_type": "parallel",
        "formatter_type": "ltd", "train_file": "train.tsv", "valid_file": "dev.tsv", "test_file": "dev.tsv"},
        distill={"teacher": str(teacher)}, ltd={"dim": 8, "projection_dim": 32, **ltd},
        eval={"evaluator": "multilingual", "batch_size": 8, "latency_batches": 2},
        multilingual={"cache_dir": str(data / "cache")}))


# --- IDF ------------------------------------------------------------------------------------------

def test_idf_is_sklearns_smooth_idf_by_hand():
    docs = [["a", "b"], ["a", "c"], ["a", "b", "b"]]  # N = 3; df: a 3, b 2, c 1; counts: a 3, b 3, c 1
    vocab = IdfVocab.build(docs, 0, "whitespace")
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c"]  # by count, ties alphabetical
    # ln((1 + N) / (1 + df)) + 1, computed by hand: <pad> 0; <unk> df 0 -> ln 4 + 1; a ln(4/4) + 1; b ln(4/3) + 1; c ln 2 + 1
    assert vocab.idf == pytest.approx([0.0, 2.386294361119891, 1.0, 1.2876820724517808, 1.6931471805599454], abs=1e-12)
    capped = IdfVocab.build(docs, 2, "whitespace")  # c is cut: <unk> is then in one document of three
    assert capped.words == ["a", "b"] and capped.idf[1] == pytest.approx(1.6931471805599454, abs=1e-12)
    assert capped.ids(["c", "b", "a"]) == [1, 3, 2]


def test_idf_counts_every_training_text_once_per_document(tmp_path, tiny_model):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood good film\t1\nbad film\t0\nthe film\t1\nnever read\t0\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ndevword\t0\n")
    config = load_config_text(tiny_config_text(tiny_model, tmp_path, "ltd", data={
        "formatter_type": "ltd", "max_examples": 3, "test_file": "dev.tsv"},
        distill={"teacher": str(tiny_model)}, ltd={"segmenter": "whitespace"}))
    vocab = build_word_vocab(config)  # init/word_vocab.py hands ltd runs to init/ltd_vocab.py
    assert vocab.segmenter == "whitespace" and vocab.documents == 3  # max_examples applies; dev is not counted
    assert vocab.words == ["film", "good", "bad", "the"]  # film 3, good 2 (one document), bad 1, the 1
    idf = dict(zip(vocab.itos, vocab.idf))
    assert idf["film"] == pytest.approx(1.0) and idf["good"] == pytest.approx(math.log(4 / 2) + 1)
    assert idf["bad"] == pytest.approx(math.log(4 / 2) + 1) and idf["<unk>"] == pytest.approx(math.log(4) + 1)


# --- the student ----------------------------------------------------------------------------------

def test_sentence_is_the_mean_of_idf_times_vector_by_hand():
    student = LtdStudent(5, 2, normalize=False)
    with torch.no_grad():
        student.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0], [0.5, 4.0], [-2.0, 1.0]]))
        student.idf.copy_(torch.tensor([0.0, 2.0, 1.5, 1.0, 3.0]))
    ids = torch.tensor([[2, 3, 2, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    e = student.embed(ids, torch.tensor([3, 1, 0]))
    # e = (1 / n) * sum_i idf(w_i) * v(w_i), written out
    first = [(1.5 * 3.0 + 1.0 * 0.5 + 1.5 * 3.0) / 3, (1.5 * -1.0 + 1.0 * 4.0 + 1.5 * -1.0) / 3]
    assert e[0].tolist() == pytest.approx(first) and e[1].tolist() == pytest.approx([3.0 * -2.0, 3.0 * 1.0])
    assert e[2].tolist() == [0.0, 0.0]  # an empty text
    projected = LtdStudent(5, 2, projection_dim=3, normalize=True)
    projected.load_state_dict(student.state_dict(), strict=False)
    out = projected.embed(ids[:1], torch.tensor([3]))
    by_hand = F.normalize(projected.projection.weight @ torch.tensor(first) + projected.projection.bias, dim=-1)
    assert torch.allclose(out[0], by_hand, atol=1e-6)


def test_table_starts_from_the_teachers_mean_pooled_outputs(tmp_path, tiny_model):
    from model.parts.ltd_init import teacher_vectors
    from pretrained.loading import load_classifier, load_tokenizer
    teacher, tok = load_classifier(str(tiny_model), "[distill] teacher").eval(), load_tokenizer(str(tiny_model))
    pieces = IdfVocab(["good", "film"], [0.0, 1.0, 1.0, 1.0], "pieces")
    got = teacher_vectors(teacher, tok, pieces)
    ids = torch.tensor([[2, tok.convert_tokens_to_ids("good"), 3]])  # [CLS] good [SEP], pooled over all three
    with torch.no_grad():
        states = teacher(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states[-1]
    assert torch.allclose(torch.from_numpy(got[1]).float(), states[0].mean(0), atol=1e-5)
    words = IdfVocab(["good"], [0.0, 1.0, 1.0], "whitespace")  # a word: pooled over its own pieces only
    assert torch.allclose(torch.from_numpy(teacher_vectors(teacher, tok, words)[1]).float(), states[0, 1], atol=1e-5)


# --- export ---------------------------------------------------------------------------------------

def test_export_loads_in_plain_sentence_transformers_with_identical_embeddings(tmp_path, sentence_teacher, sts):
    from sentence_transformers import SentenceTransformer
    run = init_all(embedding_config(sentence_teacher, sts), DistInfo(), "train")
    model = run.model.eval()
    assert type(model).__name__ == "LTDEmbedding" and model.student.config.normalize
    model.export(str(tmp_path / "student"), run.tokenizer)
    loaded = SentenceTransformer(str(tmp_path / "student"), device="cpu")
    assert [type(m).__name__ for m in loaded] == ["StaticEmbedding", "Dense", "Normalize"]
    texts = ["the movie was good", "superb", "zzz unseen words", "", "story story story film acting"]
    examples = [{"text_a": t, "text_b": "a", "label": [0, 1.0], "src_id": 0, "tgt_id": 0, "index": i}
                for i, t in enumerate(texts)]
    batch = run.formatter(examples)
    with torch.no_grad():
        ours = model.student(batch["word_ids"], batch["word_lengths"]).embeddings
    theirs = loaded.encode(texts, convert_to_tensor=True)
    assert ours.shape == theirs.shape == (5, 32)
    assert torch.allclose(ours, theirs, atol=1e-6)  # an empty text too: both give the normalised Dense bias
    own = LtdStudent.from_pretrained(tmp_path / "student")
    assert all(torch.equal(own.state_dict()[k], v) for k, v in model.student.state_dict().items())
    assert IdfVocab.from_pretrained(tmp_path / "student").idf == run.tokenizer.idf


def test_embedding_loss_is_one_minus_cosine_to_the_teacher_table(sentence_teacher, sts):
    from process.teacher_cache import build_teacher_cache
    run = init_all(embedding_config(sentence_teacher, sts), DistInfo(), "train")
    build_teacher_cache(run)
    batch = next(iter(run.loaders["train"]))
    out = run.model.train()(batch)
    texts = run.datasets["train"].texts
    with torch.no_grad():
        s = run.model.student(batch["word_ids"], batch["word_lengths"], batch["b_word_ids"], batch["b_word_lengths"])
        t_a = run.model.embed_texts([texts[i] for i in batch["src_text_id"]])
        t_b = run.model.embed_texts([texts[i] for i in batch["tgt_text_id"]])
    by_hand = (1 - F.cosine_similarity(s.embeddings, t_a)).mean() + (1 - F.cosine_similarity(s.b_embeddings, t_b)).mean()
    assert out["loss"].item() == pytest.approx(by_hand.item(), rel=1e-5)


# --- segmenters and config errors -----------------------------------------------------------------

def test_jieba_segments_chinese_sentences():
    pytest.importorskip("jieba", reason="jieba is an optional dependency (pip install jieba)")
    segment = make_segmenter(load_config_text("[model]\nmodel_name = ltd\n[ltd]\nsegmenter = jieba\n"))
    docs = segment.many(["我爱北京天安门", "北京是中国的首都", "小冰是一个聊天机器人 Chatbot"])
    assert docs == [["我", "爱", "北京", "天安门"], ["北京", "是", "中国", "的", "首都"],
                    ["小冰", "是", "一个", "聊天", "机器人", "chatbot"]]
    vocab = IdfVocab.build(docs, 0, segment.name)
    assert dict(zip(vocab.itos, vocab.idf))["北京"] == pytest.approx(math.log(4 / 3) + 1)  # in 2 of 3 documents


def test_wrong_segmenter_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load_config_text("[model]\nmodel_name = ltd\n[ltd]\nsegmenter = spaces\n")
    assert str(err.value) == "<text>:4: [ltd] segmenter = 'spaces': expected one of pieces, whitespace, jieba"


def test_missing_jieba_is_one_line_naming_the_key_and_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # import jieba then fails as if it were not installed
    with pytest.raises(ConfigError) as err:
        make_segmenter(load_config_text("[model]\nmodel_name = ltd\n[ltd]\nsegmenter = jieba\n"))
    assert str(err.value) == "<text>:4: [ltd] segmenter = jieba: the jieba package is not installed; pip install jieba"


@pytest.mark.parametrize("ltd, message", [
    ({"projection_dim": 16}, r"<text>:\d+: \[ltd\] projection_dim = 16: the student's sentence embedding is 16 wide, "
                             r"the teacher's 32; set projection_dim = 32"),
    ({"dim": 40}, r"<text>:\d+: \[ltd\] dim = 40: PCA of \d+ vocabulary items of 32-wide teacher vectors gives at most "
                  r"\d+ components; use 0 \(the teacher's width, no PCA\) or at most \d+"),
])
def test_bad_widths_fail_before_training_with_one_line(sentence_teacher, sts, ltd, message):
    with pytest.raises(ConfigError, match=message):
        init_all(embedding_config(sentence_teacher, sts, **ltd), DistInfo(), "train")


# --- end to end -----------------------------------------------------------------------------------

def test_quickstart_config_trains_tests_and_exports(tmp_path, tiny_model):
    logdir = tmp_path / "ltd"
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(REPO / "config/quickstart/ltd.config"),
                           "--logdir", str(logdir), "--do_test", "--set", f"distill.teacher={tiny_model}",
                           "--set", "ltd.dim=8", "--set", "train.epoch=1", "--set", "eval.latency_batches=2",
                           "--set", "distill.cache_dir=", "--set", "output.tensorboard=false"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((logdir / "results.json").read_text())
    assert 0.0 <= results["metrics"]["accuracy"] <= 1.0 and results["params"] > 0
    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_kd" in r for r in records)
    from sentence_transformers import SentenceTransformer
    assert SentenceTransformer(str(logdir / "student"), device="cpu").encode(["good film"]).shape == (1, 8)
    assert (logdir / "student" / "vocab.json").is_file() and (logdir / "student" / "README.md").is_file()  # the model card
