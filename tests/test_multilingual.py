"""Multilingual sentence-embedding distillation: mul_mse and Ding et al. 2022's multi-stage methods.
Student shapes and parameter counts by hand, each stage-4 term by hand, the teacher-embedding cache (once per
sentence, across epochs, resumes and ranks), the data readers and evaluator, a tiny 1 -> 2 -> 3 -> 4 pipeline through
the real training code with a SentenceTransformer export, exact resume, config errors and the shipped configs."""
import json
import math
import multiprocessing as mp
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from model.parts.loss import bool_sim_loss, in_batch_ce_loss, mcl_loss
from process.checkpoint import checkpoints_in, load_checkpoint
from process.distributed import DistInfo
from process.embedding_cache import cached_embeddings
from process.teacher_cache import build_teacher_cache, teacher_table
from process.train_entry import train_run
from tests.helpers import REPO, make_tokenizer, tiny_config_text
from utils.errors import ConfigError, DataError

EN = ["the", "man", "woman", "dog", "runs", "sits", "red", "big", "a", "on", "street", "ball"]
DE = {"the": "der", "man": "mann", "woman": "frau", "dog": "hund", "runs": "läuft", "sits": "sitzt", "red": "rot",
      "big": "groß", "a": "ein", "on": "auf", "street": "straße", "ball": "ball"}
FR = {"the": "le", "man": "homme", "woman": "femme", "dog": "chien", "runs": "court", "sits": "assis", "red": "rouge",
      "big": "grand", "a": "un", "on": "sur", "street": "rue", "ball": "balle"}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + EN + sorted(set(DE.values()) | set(FR.values()) - set(EN))


def write_encoder(path, layers=2, hidden=32, heads=2, seed=0, dropout=0.0):
    """A tiny random BERT saved as a SentenceTransformer directory (Transformer -> mean pooling)."""
    from transformers import BertConfig, BertModel
    from model.parts.sentence_embedding import write_sentence_transformers_files
    path = Path(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(path)
    make_tokenizer(VOCAB).save_pretrained(path)
    write_sentence_transformers_files(path, hidden, 16)
    return path


def write_parallel(path, n=24, seed=0):
    import random
    rng = random.Random(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("dev", 8)):
        en = [" ".join(rng.choice(EN) for _ in range(rng.randint(3, 6))) for _ in range(count)]
        (path / f"{split}.en").write_text("\n".join(en) + "\n")
        for lang, table in (("de", DE), ("fr", FR)):
            lines = [" ".join(table[w] for w in s.split()) for s in en]
            if split == "train" and lang == "de":
                lines[1] = lines[1].replace(" ", "\t", 1)  # a literal tab inside a sentence (as in Multi30k train.de)
            (path / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    rows = ["index\tsentence1\tsentence2\tscore"] + [f"{i}\t{a}\t{b}\t{s}" for i, (a, b, s) in enumerate(
        [("the man runs", "a man runs", 4.5), ("the dog sits", "a red ball", 0.5), ("a big dog", "the big dog", 4.8),
         ("the woman sits", "a man runs on the street", 1.0)])]
    (path / "sts.tsv").write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    return write_encoder(tmp_path_factory.mktemp("enc"))


@pytest.fixture(scope="module")
def par(tmp_path_factory):
    return write_parallel(tmp_path_factory.mktemp("par"))


def ml_text(enc, par, model_name, cache, **sections):
    base = {"data": {"train_dataset_type": "parallel", "valid_dataset_type": "parallel", "test_dataset_type": "parallel",
                     "formatter_type": "parallel", "train_file": "train.en|train.de, train.en|train.fr",
                     "valid_file": "dev.en|dev.de", "test_file": "dev.en|dev.de, dev.en|dev.fr, sts.tsv"},
            "distill": {"teacher": str(enc)},
            "multilingual": {"layers_to_keep": 1, "repeat": 2, "embedding_size": 8, "cache_dir": str(cache)},
            "eval": {"evaluator": "multilingual", "batch_size": 8, "latency_batches": 2},
            "train": {"epoch": 2, "batch_size": 8, "learning_rate": 2e-3, "save_steps": 3}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return tiny_config_text(enc, par, model_name, **base)


# ---------------------------------------------------------------- student shapes and parameter counts
def student_from(enc_dir, keep, repeat, e, init="svd"):
    from pretrained.loading import load_encoder
    from model.parts.recurrent_student import from_bert
    bert = load_encoder(str(enc_dir), "[model] pretrained").eval()
    return bert, from_bert(bert, list(range(keep)), repeat, e, init).eval()


def test_recurrent_student_equals_the_bert_source_when_nothing_is_cut(enc):
    bert, student = student_from(enc, 2, 1, 0)
    ids = torch.tensor([[2, 5, 9, 17, 3, 0], [2, 6, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        a = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        b = student(input_ids=ids, attention_mask=mask).last_hidden_state
    assert b.shape == (2, 6, 32)
    assert torch.allclose(a, b, atol=1e-5)


def test_xlmr_style_positions_are_shifted_into_the_student(tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaModel
    from model.parts.recurrent_student import from_bert
    torch.manual_seed(0)
    src = XLMRobertaModel(XLMRobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=40, pad_token_id=1,
                                           type_vocab_size=1)).eval()
    student = from_bert(src, [0, 1], 1, 0).eval()
    ids = torch.tensor([[0, 5, 9, 17, 2]])
    with torch.no_grad():
        assert torch.allclose(src(input_ids=ids).last_hidden_state, student(input_ids=ids).last_hidden_state, atol=1e-5)


def test_recurrence_runs_the_kept_layers_repeat_times(enc):
    bert, student = student_from(enc, 1, 3, 0)  # layer 0 only, three times
    ids = torch.tensor([[2, 5, 9, 17, 3]])
    with torch.no_grad():
        h = bert.embeddings(input_ids=ids)
        for _ in range(3):
            h = bert.encoder.layer[0](h)
            h = h[0] if isinstance(h, tuple) else h
        assert torch.allclose(student(input_ids=ids).last_hidden_state, h, atol=1e-5)
    assert student.config.num_hidden_layers == 3 and student.config.inner_group_num == 1


def test_parameter_counts_by_hand(enc):
    from efficiency.counts import count_params, embedding_params
    V, H, I, P, T, e = len(VOCAB), 32, 64, 64, 2, 8
    layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H  # q,k,v,o + LN, ffn in/out + LN
    bert, bottle = student_from(enc, 1, 2, e)
    # bottleneck (Ding et al. 2022's code): word V x e, then e -> H without bias; positions, types, LayerNorm at H
    assert count_params(bottle) == V * e + e * H + P * H + T * H + 2 * H + 1 * layer
    _, full = student_from(enc, 1, 2, 0)  # no bottleneck: the source's embedding layer, no mapping
    assert count_params(full) == V * H + P * H + T * H + 2 * H + 1 * layer
    assert count_params(bert) == V * H + P * H + T * H + 2 * H + 2 * layer + (H * H + H)  # 2 layers + pooler
    _, two = student_from(enc, 1, 5, e)
    assert count_params(two) == count_params(bottle)  # repeats cost no parameters
    ids = torch.tensor([[2, 5, 9, 3]])
    assert bottle(input_ids=ids).last_hidden_state.shape == (1, 4, H)
    assert bottle.embeddings.word_embeddings.weight.shape == (V, e)
    assert bottle.embeddings.word_projection.weight.shape == (H, e) and bottle.embeddings.word_projection.bias is None
    # the word table's share (efficiency/counts.py): V x e plus the e -> H projection; V x H without a bottleneck
    assert (embedding_params(bottle), embedding_params(full), embedding_params(bert)) == (V * e + e * H, V * H, V * H)
    from transformers import AlbertConfig, AlbertModel
    albert = AlbertModel(AlbertConfig(vocab_size=V, embedding_size=e, hidden_size=H, num_attention_heads=2,
                                      intermediate_size=I, num_hidden_layers=1))
    assert embedding_params(albert) == V * e + (e * H + H)  # ALBERT's own mapping has a bias
    assert embedding_params(torch.nn.Linear(2, 2)) is None  # no word table


def test_svd_bottleneck_starts_near_the_source_embedding_layer(enc):
    from model.parts.loss import hidden_mse_loss
    ids = torch.tensor([[2, 5, 9, 17, 3, 0], [2, 6, 12, 20, 11, 3]])
    mask = (ids != 0).long()
    errors = {}
    for init in ("svd", "random"):
        bert, student = student_from(enc, 1, 1, 24, init)
        with torch.no_grad():
            target = bert.embeddings(input_ids=ids)
            errors[init] = hidden_mse_loss(student.embedding_output(ids), target, mask).item()
    assert errors["svd"] < 0.25 * errors["random"], errors


# ---------------------------------------------------------------- stage-4 terms by hand
S_SRC = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
S_TGT = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos(s_src, s_tgt) = [[1, 1/sqrt2], [0, 1/sqrt2]]
T_SRC = torch.tensor([[1.0, 0.0], [3.0, 4.0]])  # cos(t_src, t_src) = [[1, .6], [.6, 1]]


def test_mcl_loss_by_hand():
    r = 1 / math.sqrt(2)
    expected = ((1 - 1) ** 2 + (r - 0.6) ** 2 + (0 - 0.6) ** 2 + (r - 1) ** 2) / 4
    assert mcl_loss(S_SRC, S_TGT, T_SRC).item() == pytest.approx(expected, rel=1e-6)


def test_bool_loss_by_hand():
    r = 1 / math.sqrt(2)
    expected = ((1 - 1) ** 2 + (r - 0) ** 2 + (0 - 0) ** 2 + (r - 1) ** 2) / 4
    assert bool_sim_loss(S_SRC, S_TGT).item() == pytest.approx(expected, rel=1e-6)


def test_in_batch_ce_loss_by_hand():
    r = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(2 * 1) / (math.exp(2 * 1) + math.exp(2 * r)))  # scale 2, target column 0
    row1 = -math.log(math.exp(2 * r) / (math.exp(2 * 0) + math.exp(2 * r)))  # target column 1
    assert in_batch_ce_loss(S_SRC, S_TGT, scale=2.0).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


@pytest.mark.parametrize("name,term", [("rec_bottle_mcl", "mcl"), ("rec_bottle_bool", "bool"), ("rec_bottle_ce", "ce"),
                                       ("rec_bottle_mse", None), ("mul_mse", None), ("rec_mcl", "mcl")])
def test_each_method_composes_mse_and_its_term(tmp_path, enc, par, name, term):
    from process.init_process import init_all
    (tmp_path / "c.config").write_text(ml_text(enc, par, name, tmp_path / "cache", multilingual={"cl_weight": 0.5}))
    run = init_all(load_config(tmp_path / "c.config"), DistInfo(), "train")
    model = run.model
    build_teacher_cache(run)
    model.train()
    batch = next(iter(run.loaders["train"]))
    torch.manual_seed(0)
    out = model(batch)
    torch.manual_seed(0)
    s_src, s_tgt = model.encode(batch), model.encode(batch, "tgt_")
    t = torch.stack([model.embed_texts([run.datasets["train"].texts[int(i)]])[0] for i in batch["src_text_id"]])
    en, mul = ((s_src - t) ** 2).mean(), ((s_tgt - t) ** 2).mean()
    sims = F.normalize(s_src, dim=-1) @ F.normalize(s_tgt, dim=-1).T
    extra = {"mcl": lambda: ((sims - F.normalize(t, dim=-1) @ F.normalize(t, dim=-1).T) ** 2).mean(),
             "bool": lambda: ((sims - torch.eye(len(t))) ** 2).mean(),
             "ce": lambda: F.cross_entropy(20.0 * sims, torch.arange(len(t))), None: lambda: torch.tensor(0.0)}[term]()
    assert out["loss_en"].item() == pytest.approx(en.item(), rel=1e-4, abs=1e-7)
    assert out["loss_mul"].item() == pytest.approx(mul.item(), rel=1e-4, abs=1e-7)
    assert out["loss"].item() == pytest.approx((en + mul + 0.5 * extra).item(), rel=1e-4, abs=1e-7)
    assert ("loss_cl" in out) == (term is not None)


def test_normalising_teacher_makes_the_student_normalise_and_mul_mse_start_at_zero(tmp_path, par):
    """all-MiniLM-L6-v2 ends in Normalize: the student must too, else the MSE pits raw mean-pooled vectors
    against unit targets, and the teacher's own weights would not start at zero English loss."""
    from model.parts.sentence_embedding import write_sentence_transformers_files
    from process.init_process import init_all
    from sentence_transformers import SentenceTransformer
    normed = write_encoder(tmp_path / "normed")
    write_sentence_transformers_files(normed, 32, 16, normalize=True)
    (tmp_path / "c.config").write_text(ml_text(normed, par, "mul_mse", tmp_path / "cache"))
    run = init_all(load_config(tmp_path / "c.config"), DistInfo(), "train")
    model = run.model
    build_teacher_cache(run)
    model.train()  # dropout is 0 in the tiny encoder: the student is exactly the teacher
    out = model(next(iter(run.loaders["train"])))
    assert model.normalize and out["loss_en"].item() < 1e-12 and out["loss_mul"].item() > 1e-6
    s_src = model.encode(next(iter(run.loaders["train"])))
    assert torch.allclose(s_src.norm(dim=-1), torch.ones(len(s_src)), atol=1e-5)
    model.export(tmp_path / "export", run.tokenizer)
    st = SentenceTransformer(str(tmp_path / "export"), device="cpu")
    assert type(st[-1]).__name__ == "Normalize"
    assert torch.allclose(st.encode(["the dog runs"], convert_to_tensor=True).norm(), torch.tensor(1.0), atol=1e-5)
    (tmp_path / "c2.config").write_text(ml_text(write_encoder(tmp_path / "plain"), par, "mul_mse", tmp_path / "cache"))
    assert not init_all(load_config(tmp_path / "c2.config"), DistInfo(), "train").model.normalize  # mean pooling only


def test_wider_teacher_gets_a_projection_that_trains_ships_as_dense_and_carries_to_the_next_stage(tmp_path, enc, par):
    """A 32-wide student under a 48-wide teacher (as a 384-wide MiniLM under all-mpnet-base-v2's 768): mean pooling,
    then a learned linear map to 48, then the MSE; the export is Transformer -> Pooling -> Dense, and the next stage
    starts its projection from that Dense. A Dense of the wrong shape is a one-line error."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel
    from process.init_process import init_all
    wide = write_encoder(tmp_path / "wide", hidden=48, heads=2, seed=1)
    config = load_config_text(tmp_path, ml_text(enc, par, "mul_mse", tmp_path / "cache", distill={"teacher": str(wide)}))
    run = init_all(config, DistInfo(), "train")
    model = run.model
    build_teacher_cache(run)
    model.train()
    batch = next(iter(run.loaders["train"]))
    out = model(batch)
    W, b = model.projection.weight.detach(), model.projection.bias.detach()
    assert W.shape == (48, 32) and "projection.weight" in model.trainable_state()["heads"]
    assert model.deployed_params() == sum(p.numel() for p in model.student.parameters()) + 48 * 32 + 48

    def by_hand(prefix):
        mask = batch[prefix + "attention_mask"].unsqueeze(-1).float()
        hidden = model.student(input_ids=batch[prefix + "input_ids"], attention_mask=batch[prefix + "attention_mask"],
                               token_type_ids=batch[prefix + "token_type_ids"]).last_hidden_state
        return ((hidden * mask).sum(1) / mask.sum(1)) @ W.T + b
    t = torch.stack([model.embed_texts([run.datasets["train"].texts[int(i)]])[0] for i in batch["src_text_id"]])
    assert t.shape[1] == 48
    assert out["loss_en"].item() == pytest.approx(((by_hand("") - t) ** 2).mean().item(), rel=1e-4)
    assert out["loss_mul"].item() == pytest.approx(((by_hand("tgt_") - t) ** 2).mean().item(), rel=1e-4)
    out["loss"].backward()
    assert model.projection.weight.grad.abs().sum() > 0

    export = tmp_path / "export"
    model.eval()
    model.export(export, run.tokenizer)
    st = SentenceTransformer(str(export), device="cpu")
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Dense"]
    enc_ = run.tokenizer(["the dog runs", "der hund läuft"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(str(export)).eval()(**enc_).last_hidden_state
        mask = enc_["attention_mask"].unsqueeze(-1).float()
        expected = ((hidden * mask).sum(1) / mask.sum(1)) @ W.T + b
    assert torch.allclose(st.encode(["the dog runs", "der hund läuft"], convert_to_tensor=True), expected, atol=1e-5)

    stage2 = init_all(load_config_text(tmp_path, ml_text(export, par, "bottle_distill", tmp_path / "cache",
                                                         distill={"teacher": str(wide)})), DistInfo(), "train").model
    assert torch.equal(stage2.projection.weight.detach(), W) and torch.equal(stage2.projection.bias.detach(), b)
    with pytest.raises(ConfigError, match=r"x.config:\d+: \[model\] pretrained ends in a Dense 32 -> 48, but the student "
                                          r"is 32 wide and the teacher's embedding 32$") as err:
        init_all(load_config_text(tmp_path, ml_text(export, par, "mul_mse", tmp_path / "cache",
                                                    distill={"teacher": str(enc)})), DistInfo(), "train")
    assert "\n" not in str(err.value)


def test_stage3_targets_are_each_sentence_own_teacher_embedding(tmp_path, enc, par):
    from process.init_process import init_all
    (tmp_path / "c.config").write_text(ml_text(enc, par, "rec_bottle_distill", tmp_path / "cache"))
    run = init_all(load_config(tmp_path / "c.config"), DistInfo(), "train")
    build_teacher_cache(run)
    batch = next(iter(run.loaders["train"]))
    t_src, t_tgt = run.model.teacher_targets(batch)
    texts = run.datasets["train"].texts
    assert torch.allclose(t_tgt[0], run.model.embed_texts([texts[int(batch["tgt_text_id"][0])]])[0], atol=1e-6)
    assert not torch.allclose(t_src, t_tgt)



def test_monolingual_sentences_join_stage3_two_per_row_each_on_its_own_target(tmp_path, enc, par):
    from dataset.parallel import ParallelDataset
    from process.init_process import init_all
    (tmp_path / "mono.txt").write_text("a man runs\n\nthe dog sits\na big dog\nthe woman sits\na red ball\n")
    text = ml_text(enc, par, "rec_bottle_distill", tmp_path / "cache",
                   data={"monolingual_file": str(tmp_path / "mono.txt"), "monolingual_examples": 4})
    config = load_config_text(tmp_path, text)
    train = ParallelDataset(config, "train")
    mono = [(ex["text_a"], ex["text_b"]) for ex in train.examples[48:]]
    assert len(train) == 50 and mono == [("a man runs", "the dog sits"), ("a big dog", "the woman sits")]
    assert len(ParallelDataset(config, "valid")) == 8  # training only
    run = init_all(config, DistInfo(), "train")
    table, texts = teacher_table(run), run.datasets["train"].texts
    row = train.examples[49]
    expected = run.model.embed_texts([texts[row["src_id"]], texts[row["tgt_id"]]])
    assert torch.allclose(table[row["src_id"]], expected[0], atol=1e-6)
    assert torch.allclose(table[row["tgt_id"]], expected[1], atol=1e-6)


@pytest.mark.parametrize("name", ["mul_mse", "rec_bottle_mcl", "rec_bottle_mse", "bottle_distill"])
def test_monolingual_sentences_are_refused_where_a_row_must_be_a_translation(tmp_path, enc, par, name):
    from process.init_process import init_all
    (tmp_path / "mono.txt").write_text("a man runs\nthe dog sits\n")
    config = load_config_text(tmp_path, ml_text(enc, par, name, tmp_path / "cache",
                                                data={"monolingual_file": str(tmp_path / "mono.txt")}))
    with pytest.raises(ConfigError, match=rf"x.config:\d+: \[data\] monolingual_file: {name} reads each row as a "
                                          "translation pair") as err:
        init_all(config, DistInfo(), "train")
    assert "\n" not in str(err.value)

# ---------------------------------------------------------------- teacher-embedding cache
class Counter:
    def __init__(self):
        self.texts = []

    def __call__(self, texts):
        self.texts += list(texts)
        return torch.stack([torch.tensor([float(len(t)), float(sum(map(ord, t)) % 97)]) for t in texts])


def test_cache_embeds_each_sentence_once_and_reuses_the_file(tmp_path):
    texts = ["a b", "c", "d e f", "g"]
    count = Counter()
    first = cached_embeddings(texts, count, "fp", tmp_path, DistInfo(), batch_size=3)
    assert sorted(count.texts) == sorted(texts)
    again = cached_embeddings(texts, count, "fp", tmp_path, DistInfo(), batch_size=3)
    assert len(count.texts) == 4 and torch.equal(first, again)
    assert torch.equal(first[1], torch.tensor([1.0, 99.0 % 97]))  # row order = text order
    cached_embeddings(texts, count, "other teacher", tmp_path, DistInfo())
    assert len(count.texts) == 8  # another teacher fingerprint is another key


def test_no_cache_dir_embeds_every_call_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    texts = ["a b", "c"]
    count = Counter()
    first = cached_embeddings(texts, count, "fp", None, DistInfo())
    again = cached_embeddings(texts, count, "fp", None, DistInfo())
    assert len(count.texts) == 4 and torch.equal(first, again)  # computed twice: nothing kept
    assert list(tmp_path.iterdir()) == []


def test_training_embeds_each_distinct_source_once_across_pairs_epochs_and_resume(tmp_path, enc, par, monkeypatch):
    from model.parts.sentence_embedding import SentenceDistill
    seen = []
    original = SentenceDistill.embed_texts

    def counting(self, texts):
        seen.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(SentenceDistill, "embed_texts", counting)
    (tmp_path / "c.config").write_text(ml_text(enc, par, "rec_bottle_mcl", tmp_path / "cache", train={"epoch": 2}))
    train_run(load_config(tmp_path / "c.config"), DistInfo(), str(tmp_path / "run"))
    english = [l for l in (par / "train.en").read_text().splitlines() if l.strip()]
    assert sorted(seen) == sorted(set(english))  # 2 language pairs x 2 epochs, each English sentence once
    seen.clear()
    train_run(load_config(tmp_path / "c.config"), DistInfo(), str(tmp_path / "run2"))
    assert seen == []  # a second run (or a resume) reads the disk cache


def _rank_main(rank, world, port, directory, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    count = Counter()
    texts = [f"sentence {i}" for i in range(7)]
    table = cached_embeddings(texts, count, "fp", directory, DistInfo(rank, world))
    again = cached_embeddings(texts, count, "fp", directory, DistInfo(rank, world))
    torch.save({"count": count.texts, "table": table, "again": again}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_cache_is_computed_once_across_ddp_ranks(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, str(tmp_path / "cache"), str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert sorted(r0["count"] + r1["count"]) == sorted(f"sentence {i}" for i in range(7))  # each once, over all ranks
    assert torch.equal(r0["table"], r1["table"]) and torch.equal(r0["table"], r0["again"])
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


# ---------------------------------------------------------------- data and evaluator
def test_parallel_files_keep_a_literal_tab_and_sts_tsv_is_detected(tmp_path, enc, par):
    from dataset.parallel import ParallelDataset
    config = load_config_text(tmp_path, ml_text(enc, par, "mul_mse", tmp_path / "cache"))
    train = ParallelDataset(config, "train")
    assert len(train) == 48 and "\t" in train[1]["text_b"]
    assert len(train.source_ids) == len(set((par / "train.en").read_text().splitlines()))
    test = ParallelDataset(config, "test")
    sts = [ex for ex in test.examples if not math.isnan(ex["label"][1])]
    assert [ex["label"][1] for ex in sts] == [4.5, 0.5, 4.8, 1.0]
    capped = ParallelDataset(load_config_text(tmp_path, ml_text(enc, par, "mul_mse", tmp_path / "cache"),
                                              ["data.max_examples=5"]), "train")
    assert [ex["guid"].rsplit(".", 1)[-1].split(":")[0] for ex in capped.examples] == ["de"] * 3 + ["fr"] * 2


def load_config_text(tmp_path, text, overrides=()):
    path = tmp_path / "x.config"
    path.write_text(text)
    return load_config(path, list(overrides))


def test_misaligned_parallel_files_fail_with_their_names(tmp_path, enc, par):
    from dataset.parallel import ParallelDataset
    (tmp_path / "short.de").write_text("ein hund\n")
    config = load_config_text(tmp_path, ml_text(enc, par, "mul_mse", tmp_path / "cache"),
                              [f"data.train_file=train.en|{tmp_path / 'short.de'}"])
    with pytest.raises(DataError, match=r"train.en has 24 lines but .*short.de has 1"):
        ParallelDataset(config, "train")


def test_evaluator_by_hand():
    from evaluator.multilingual import MultilingualEvaluator
    ev = MultilingualEvaluator()
    ev.names = ["deu", "sts"]
    s_src = [[1, 0], [0, 1], [1, 1], [1, 0], [0, 1]]
    s_tgt = [[1, 0.1], [1, 0.2], [1, 1], [1, 0], [1, 1]]  # pair 1 retrieves pair 0's target: 2/3 src->tgt
    t_src = [[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]]
    logits = torch.tensor([a + b + c for a, b, c in zip(s_src, s_tgt, t_src)], dtype=torch.float64).numpy()
    labels = [[0, math.nan]] * 3 + [[1, 5.0], [1, 1.0]]
    out = ev(logits, labels)
    assert out["deu_src2tgt"] == pytest.approx(2 / 3)
    # tgt->src: [1,.1] -> src0 ok; [1,.2] -> src0 (cos .98 vs src2 .83) wrong; [1,1] -> src2 ok
    assert out["deu_tgt2src"] == pytest.approx(2 / 3)
    mse = (0 + 0.1 ** 2 + 1 + 0.8 ** 2 + 0 + 0) / 6  # mean over the 3 x 2 entries of (s_tgt - t_src)^2
    assert out["deu_mse"] == pytest.approx(mse)
    assert out["sts_spearman"] == pytest.approx(1.0)  # cos 1 for score 5, cos 1/sqrt2 for score 1
    assert out["accuracy"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- the pipeline, export, resume
def test_pipeline_stage1_to_4_trains_exports_and_logs_parameters(tmp_path, enc, par):
    """The authors' chain: stage 1's multilingual model (mul_mse) is stage 2's source and stage 3's teacher; stage 4
    goes back to the English teacher."""
    from process.pipeline import parse_pipeline, run_pipeline, stage_config
    from sentence_transformers import SentenceTransformer
    from dataset.parallel import ParallelDataset
    common = dict(train={"epoch": 2, "save_steps": 0})
    for name in ("mul_mse", "bottle_distill", "rec_bottle_distill", "rec_bottle_mcl"):
        (tmp_path / f"{name}.config").write_text(ml_text(enc, par, name, tmp_path / "cache", **common))
    (tmp_path / "pipe.config").write_text(
        "[pipeline]\nstages = s1, s2, s3, s4\n[stage.s1]\nconfig = mul_mse.config\n"
        "[stage.s2]\nconfig = bottle_distill.config\ninit_from = s1\n"
        "[stage.s3]\nconfig = rec_bottle_distill.config\ninit_from = s2\nteacher_from = s1\n"
        "[stage.s4]\nconfig = rec_bottle_mcl.config\ninit_from = s3\ndo_test = true\n")
    summaries = run_pipeline(str(tmp_path / "pipe.config"), DistInfo(), str(tmp_path / "runs"))
    # stage 3's teacher table holds stage 1's student's embeddings of every training sentence (both sides), not
    # the English teacher's: the cache file of that size matches SentenceTransformer(stage-1 export) row by row
    s3_config = stage_config(tmp_path / "pipe.config", "s3", dict(parse_pipeline(tmp_path / "pipe.config"))["s3"],
                             tmp_path / "runs", [])
    texts = ParallelDataset(s3_config, "train").texts
    tables = [torch.load(f, weights_only=True)["embeddings"] for f in (tmp_path / "cache").glob("*.pt")]
    s3_table, = [t for t in tables if len(t) == len(texts)]
    stage1 = SentenceTransformer(str(tmp_path / "runs" / "s1" / "student"), device="cpu")
    english = SentenceTransformer(str(enc), device="cpu")
    assert torch.allclose(s3_table, stage1.encode(texts, convert_to_tensor=True), atol=1e-5)
    assert not torch.allclose(s3_table, english.encode(texts, convert_to_tensor=True), atol=1e-3)
    assert summaries["s2"]["params"] == summaries["s3"]["params"] == summaries["s4"]["params"]
    assert summaries["s4"]["params"] < summaries["s4"]["teacher_params"]
    # efficiency report: stage 2 runs no shared layer, only the bottleneck's e -> hidden projection (the formula's
    # 0 student forwards, corrected by the measured step); stage 4 encodes both sides and reads the teacher's table
    s2 = summaries["s2"]["efficiency"]
    assert s2["flops_measured_vs_formula"] is None and 0 < s2["flops_per_example"] < s2["student_forward_flops_per_example"] / 10
    s4 = summaries["s4"]["efficiency"]
    # two sides, forward + backward: 6 forwards at the English side's length, the measured step shifting it by
    # the other side's length
    assert s4["flops_per_example"] == pytest.approx(6 * s4["student_forward_flops_per_example"], rel=0.05)
    assert s4["flops_measured_vs_formula"] == pytest.approx(1, rel=0.05)
    losses = [json.loads(l)["loss"] for l in (tmp_path / "runs" / "s4" / "metrics.jsonl").read_text().splitlines()
              if '"split"' not in l]
    assert sum(losses[-2:]) < sum(losses[:2])
    results = json.loads((tmp_path / "runs" / "s4" / "results.json").read_text())
    assert {"de_src2tgt", "fr_tgt2src", "accuracy", "sts_spearman", "spearman", "mse"} <= set(results["metrics"])
    export = tmp_path / "runs" / "s4" / "student"
    st = SentenceTransformer(str(export), device="cpu")
    assert type(st[0].auto_model).__name__ == "RecurrentBertModel" and st[0].auto_model.config.num_hidden_layers == 2
    mine = st.encode(["the dog runs", "der hund läuft"], convert_to_tensor=True)
    from pretrained.loading import load_tokenizer
    from model.parts.sentence_embedding import mean_pool
    tok = load_tokenizer(str(export))
    enc_ = tok(["the dog runs", "der hund läuft"], padding=True, return_tensors="pt")
    from transformers import AutoModel
    ref = AutoModel.from_pretrained(str(export)).eval()
    with torch.no_grad():
        expect = mean_pool(ref(**enc_).last_hidden_state, enc_["attention_mask"])
    assert torch.allclose(mine, expect, atol=1e-5)


def test_tested_run_records_word_table_parameters_and_batch32_latency(tmp_path, enc, par):
    """results.json of a bottleneck student: the word table's parameters (V x e + e x H), the teacher's (V x H), and
    batch-32 latency beside batch-1 for both, in the efficiency block too; the test split's first 32 examples are
    its 20 rows here, one batch."""
    text = ml_text(enc, par, "rec_bottle_mse", tmp_path / "cache", train={"epoch": 1}, eval={"latency_batch32_runs": 2})
    (tmp_path / "c.config").write_text(text)
    train_run(load_config(tmp_path / "c.config"), DistInfo(), str(tmp_path / "run"), do_test=True)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    V, H, e = len(VOCAB), 32, 8
    assert (results["embedding_params"], results["teacher_embedding_params"]) == (V * e + e * H, V * H)
    timed = ("batch32_latency_ms", "batch32_latency_iqr_ms", "teacher_batch32_latency_ms", "batch32_latency_cpu_share")
    assert all(results[k] > 0 for k in ("latency_ms", "teacher_latency_ms") + timed)
    assert {k: results["efficiency"][k] for k in timed} == {k: results[k] for k in timed}
    assert results["latency_reliable"] == (min(results["latency_cpu_share"], results["batch32_latency_cpu_share"]) >= 0.5)


def test_interrupted_run_resumes_bitwise(tmp_path, enc, par):
    text = ml_text(enc, par, "rec_bottle_ce", tmp_path / "cache", train={"epoch": 2, "save_steps": 3},
                   multilingual={"cl_weight": 0.01})
    (tmp_path / "c.config").write_text(text)
    train_run(load_config(tmp_path / "c.config"), DistInfo(), str(tmp_path / "full"))
    train_run(load_config(tmp_path / "c.config"), DistInfo(), str(tmp_path / "resumed"),
              str(tmp_path / "full" / "checkpoints" / "step-0000003.pt"))
    a = load_checkpoint(checkpoints_in(tmp_path / "full")[-1])["student"]
    b = load_checkpoint(checkpoints_in(tmp_path / "resumed")[-1])["student"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- config errors and shipped configs
@pytest.mark.parametrize("overrides,message", [
    (["multilingual.layers_to_keep=5"], r"\[multilingual\] layers_to_keep = 5: the source has only 2 layers"),
    (["multilingual.embedding_size=64"], r"\[multilingual\] embedding_size = 64: larger than the hidden size 32"),
    (["distill.teacher=./no/such/teacher"], r"^\[distill\] teacher = \./no/such/teacher: no such directory"),
])
def test_bad_config_fails_with_one_line(tmp_path, enc, par, overrides, message):
    from process.init_process import init_all
    config = load_config_text(tmp_path, ml_text(enc, par, "rec_bottle_mcl", tmp_path / "cache"), overrides)
    with pytest.raises(ConfigError, match=message) as err:
        init_all(config, DistInfo(), "train")
    assert "\n" not in str(err.value)


SHIPPED = sorted((REPO / "config" / "distill").glob("*.config")) + sorted((REPO / "config" / "multilingual").glob("*.config"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    from init.config import is_pipeline
    from process.pipeline import parse_pipeline
    if is_pipeline(path):
        from process.pipeline import stage_config
        for name, section in parse_pipeline(path):
            assert stage_config(path, name, section, "unused", [], handoff=False).get("model", "model_name")
        return
    config = load_config(path)
    assert config.get("model", "model_name") in __import__("init.registry", fromlist=["model_list"]).model_list


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.name.startswith("xlmr_")], ids=lambda p: p.name)
def test_xlmr_configs_name_the_missing_weights(path):
    from process.init_process import init_all
    from utils.paths import data_root
    config = load_config(path, ["data.max_examples=8"])
    if not (data_root(config) / "multi30k" / "train.en").is_file():  # the data loads before the weights are looked for
        pytest.skip(f"Multi30k not found under {data_root(config)}")
    with pytest.raises(ConfigError, match=r"^\[(distill\] teacher|model\] pretrained) = (\./models/|runs/multilingual/xlmr/)"
                                          r"\S+: no such directory") as err:
        init_all(config, DistInfo(), "train")
    assert "\n" not in str(err.value)
