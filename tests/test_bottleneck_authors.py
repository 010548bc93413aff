"""Ding et al. 2022's bottleneck and stage 2 as their code defines them (github.com/KB-Ding/Multi-stage-Distillaton-
Framework, model/distillation/bottle_distill.py: `Small_Embeddings` and the stage-2 forward), each computed here by
hand with plain torch ops on tiny random models:
- the factorised embedding: LayerNorm(onehot(x) @ W (V x e) @ A (e x H, no bias) + position[p] + type[t]);
- its parameter count: V*e + e*H + (positions + types)*H + 2H;
- the stage-2 loss: MSE between the mean-pooled (valid tokens) embedding outputs of student and source, per side,
  the two sides summed; only the embedding layer learns;
- the chain: stage 2's export starts stage 3, stage 3's starts stage 4, and exports load in SentenceTransformer
  here and, through trust_remote_code, in a process that has never seen this repository."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from init.config import load_config
from process.distributed import DistInfo
from tests.test_multilingual import VOCAB, ml_text, write_encoder, write_parallel
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    return write_encoder(tmp_path_factory.mktemp("enc"), seed=3)


@pytest.fixture(scope="module")
def par(tmp_path_factory):
    return write_parallel(tmp_path_factory.mktemp("par"))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def authors_embedding(emb, ids, types):
    """Small_Embeddings.forward in eval mode, by hand: one-hot lookups and matrix products."""
    V = emb.word_embeddings.weight.shape[0]
    onehot = F.one_hot(ids, V).double()
    word = onehot @ emb.word_embeddings.weight.double() @ emb.word_projection.weight.double().T  # V x e, then e -> H
    pos = F.one_hot(torch.arange(ids.shape[1]), emb.position_embeddings.weight.shape[0]).double() @ emb.position_embeddings.weight.double()
    typ = F.one_hot(types, emb.token_type_embeddings.weight.shape[0]).double() @ emb.token_type_embeddings.weight.double()
    return layer_norm(word + pos + typ, emb.LayerNorm.weight.double(), emb.LayerNorm.bias.double(), emb.LayerNorm.eps)


def source_embedding(bert_emb, ids, types):
    """A BERT embedding layer in eval mode, by hand."""
    word = bert_emb.word_embeddings.weight.double()[ids]
    pos = bert_emb.position_embeddings.weight.double()[torch.arange(ids.shape[1])]
    typ = bert_emb.token_type_embeddings.weight.double()[types]
    return layer_norm(word + pos + typ, bert_emb.LayerNorm.weight.double(), bert_emb.LayerNorm.bias.double(),
                      bert_emb.LayerNorm.eps)


def tiny_student(e, seed=0, V=30, H=16, P=24, T=2):
    from model.parts.recurrent_encoder import RecurrentBertConfig, RecurrentBertModel
    torch.manual_seed(seed)
    config = RecurrentBertConfig(vocab_size=V, embedding_size=e, hidden_size=H, num_hidden_layers=2, num_hidden_groups=1,
                                 inner_group_num=1, num_attention_heads=2, intermediate_size=2 * H,
                                 max_position_embeddings=P, type_vocab_size=T)
    model = RecurrentBertModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm and type rows
        model.embeddings.LayerNorm.weight.uniform_(0.5, 1.5)
        model.embeddings.LayerNorm.bias.normal_()
        model.embeddings.token_type_embeddings.weight.normal_()
    return model


def test_factorised_embedding_is_the_authors_small_embeddings():
    model = tiny_student(e=4)
    emb = model.embeddings
    assert emb.word_embeddings.weight.shape == (30, 4)
    assert emb.word_projection.weight.shape == (16, 4) and emb.word_projection.bias is None
    assert emb.position_embeddings.weight.shape == (24, 16) and emb.token_type_embeddings.weight.shape == (2, 16)
    assert emb.LayerNorm.weight.shape == (16,)
    ids = torch.tensor([[2, 7, 11, 29, 3, 0], [2, 5, 3, 0, 0, 0]])
    types = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        mine = model.embedding_output(ids, types).double()
    assert torch.allclose(mine, authors_embedding(emb, ids, types), atol=1e-5)
    # the shared layers receive exactly that: ALBERT's e -> hidden mapping is gone
    assert isinstance(model.encoder.embedding_hidden_mapping_in, torch.nn.Identity)
    assert not any("embedding_hidden_mapping_in" in k for k in model.state_dict())


def test_parameter_count_of_the_bottleneck_embedding():
    from efficiency.counts import count_params
    V, e, H, P, T = 30, 4, 16, 24, 2
    model = tiny_student(e=e)
    assert count_params(model.embeddings) == V * e + e * H + (P + T) * H + 2 * H
    plain = tiny_student(e=H)  # embedding_size == hidden: the plain table, no projection (rec_distill, rec_mcl)
    assert plain.embeddings.word_projection is None
    assert count_params(plain.embeddings) == V * H + (P + T) * H + 2 * H
    layer = 4 * (H * H + H) + 2 * H + (H * 2 * H + 2 * H) + (2 * H * H + H) + 2 * H
    assert count_params(model) == count_params(model.embeddings) + layer  # one shared layer, whatever `repeat`


def test_svd_start_is_the_best_rank_e_factorisation_and_exact_when_e_covers_the_rank(enc):
    from pretrained.loading import load_encoder
    from model.parts.recurrent_student import from_bert
    bert = load_encoder(str(enc), "[model] pretrained").eval()
    table = bert.embeddings.word_embeddings.weight.detach().double()
    centred = table - table.mean(1, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    for e in (5, 12):
        student = from_bert(bert, [0], 1, e, "svd").eval()
        emb = student.embeddings
        product = emb.word_embeddings.weight.double() @ emb.word_projection.weight.double().T
        assert torch.allclose(product, (u[:, :e] * s[:e]) @ vh[:e], atol=1e-5)
        assert torch.equal(emb.position_embeddings.weight, bert.embeddings.position_embeddings.weight)
        assert torch.equal(emb.LayerNorm.weight, bert.embeddings.LayerNorm.weight)
    # 32 wide: a centred table has rank <= 31, so e = 31 loses nothing LayerNorm reads
    full = from_bert(bert, [0], 1, 31, "svd").eval()
    ids = torch.tensor([[2, 5, 9, 17, 3]])
    types = torch.zeros_like(ids)
    with torch.no_grad():
        assert torch.allclose(full.embedding_output(ids).double(), source_embedding(bert.embeddings, ids, types), atol=1e-5)


def test_svd_start_reads_xlmr_positions_from_pad_plus_one():
    from transformers import XLMRobertaConfig, XLMRobertaModel
    from model.parts.recurrent_student import from_bert
    torch.manual_seed(0)
    src = XLMRobertaModel(XLMRobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=40, pad_token_id=1,
                                           type_vocab_size=1)).eval()
    student = from_bert(src, [0], 1, 15, "svd").eval()  # rank of the centred 16-wide table <= 15: exact
    ids = torch.tensor([[0, 5, 9, 17, 2]])
    with torch.no_grad():
        assert torch.allclose(student.embedding_output(ids), src.embeddings(input_ids=ids), atol=1e-5)


def test_random_start_is_a_fresh_embedding_layer_as_the_authors(enc):
    from pretrained.loading import load_encoder
    from model.parts.recurrent_student import from_bert
    bert = load_encoder(str(enc), "[model] pretrained").eval()
    torch.manual_seed(0)
    emb = from_bert(bert, [0], 1, 8, "random").embeddings
    assert emb.word_embeddings.weight.std().item() == pytest.approx(1.0, abs=0.2)  # nn.Embedding: N(0, 1)
    assert torch.equal(emb.word_embeddings.weight[0], torch.zeros(8))  # the padding row
    assert not torch.equal(emb.position_embeddings.weight, bert.embeddings.position_embeddings.weight[:64])
    assert torch.equal(emb.LayerNorm.weight, torch.ones(32)) and torch.equal(emb.LayerNorm.bias, torch.zeros(32))


def init_run(tmp_path, enc, par, name, config_name="c.config", **sections):
    from process.init_process import init_all
    (tmp_path / config_name).write_text(ml_text(enc, par, name, tmp_path / "cache", **sections))
    return init_all(load_config(tmp_path / config_name), DistInfo(), "train")


@pytest.mark.parametrize("init", ["svd", "random"])
def test_stage2_loss_is_the_mse_of_mean_pooled_embedding_outputs(tmp_path, enc, par, init):
    run = init_run(tmp_path, enc, par, "bottle_distill", multilingual={"bottleneck_init": init})
    model = run.model.train()  # the tiny encoder has no dropout: train mode is deterministic
    batch = next(iter(run.loaders["train"]))
    out = model(batch)
    source = model._frozen["embedding_teacher"]
    student = model.student.embeddings
    expected = {}
    for prefix, key in (("", "loss_en"), ("tgt_", "loss_mul")):
        ids, types, mask = (batch[prefix + k] for k in ("input_ids", "token_type_ids", "attention_mask"))
        m = mask.double().unsqueeze(-1)
        teacher = (source_embedding(source, ids, types) * m).sum(1) / m.sum(1)  # mean over valid tokens
        mine = (authors_embedding(student, ids, types) * m).sum(1) / m.sum(1)
        expected[key] = ((mine - teacher) ** 2).mean()  # nn.MSELoss: mean over batch x hidden
    assert out["loss_en"].item() == pytest.approx(expected["loss_en"].item(), rel=1e-4)
    assert out["loss_mul"].item() == pytest.approx(expected["loss_mul"].item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx((expected["loss_en"] + expected["loss_mul"]).item(), rel=1e-4)
    assert out["loss"].item() > 1e-6
    # padding plays no part: another id under a 0 in the mask leaves the loss as it is
    padded = batch["attention_mask"] == 0
    if padded.any():
        other = dict(batch, input_ids=batch["input_ids"].masked_fill(padded, 7))
        assert model(other)["loss_en"].item() == pytest.approx(out["loss_en"].item(), rel=1e-6)
    # only the embedding layer learns; the shared layers ride along for stage 3
    out["loss"].backward()
    grads = {n for n, p in model.student.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"embeddings.word_embeddings.weight", "embeddings.word_projection.weight",
            "embeddings.position_embeddings.weight", "embeddings.LayerNorm.weight"} <= grads
    assert not any(n.startswith("encoder.") for n in grads)
    assert not any(p.requires_grad for p in model.student.encoder.parameters())


def test_token_objective_option_is_the_masked_mse_token_by_token(tmp_path, enc, par):
    run = init_run(tmp_path, enc, par, "bottle_distill", multilingual={"bottle_objective": "token"})
    model = run.model.train()
    batch = next(iter(run.loaders["train"]))
    out = model(batch)
    ids, types, mask = (batch[k] for k in ("input_ids", "token_type_ids", "attention_mask"))
    per_token = ((authors_embedding(model.student.embeddings, ids, types)
                  - source_embedding(model._frozen["embedding_teacher"], ids, types)) ** 2).mean(-1)
    expected = (per_token * mask).sum() / mask.sum()  # mean over the hidden units, then over the valid tokens
    assert out["loss_en"].item() == pytest.approx(expected.item(), rel=1e-4)


def export(run, directory):
    run.model.export(directory, run.tokenizer)
    return directory


def test_chain_stage2_to_stage3_to_stage4_loads_each_export(tmp_path, enc, par):
    from efficiency.counts import count_params
    from sentence_transformers import SentenceTransformer
    from model.parts.sentence_embedding import mean_pool
    s2 = init_run(tmp_path, enc, par, "bottle_distill", "s2.config")
    with torch.no_grad():  # make stage 2's output differ from its svd start, as after training
        s2.model.student.embeddings.word_projection.weight.mul_(1.5)
    d2 = export(s2, tmp_path / "s2")
    s3 = init_run(tmp_path, enc, par, "rec_bottle_distill", "s3.config", model={"pretrained": str(d2)})
    a, b = s2.model.student.state_dict(), s3.model.student.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # stage 3 starts where stage 2 ended
    assert s3.model.student.config.num_hidden_layers == 2 and s3.model.student.config.inner_group_num == 1
    assert all(p.requires_grad for p in s3.model.student.parameters())  # every parameter trains in stage 3
    d3 = export(s3, tmp_path / "s3")
    s4 = init_run(tmp_path, enc, par, "rec_bottle_mcl", "s4.config", model={"pretrained": str(d3)},
                  multilingual={"repeat": 3})
    assert s4.model.student.config.num_hidden_layers == 3  # repeat re-set for free: the layers are shared
    assert count_params(s4.model.student) == count_params(s2.model.student)
    d4 = export(s4, tmp_path / "s4")
    st = SentenceTransformer(str(d4), device="cpu")
    assert type(st[0].auto_model).__name__ == "RecurrentBertModel"
    texts = ["the dog runs", "der hund läuft auf der straße"]
    enc_ = s4.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expect = mean_pool(s4.model.student.eval()(**enc_).last_hidden_state, enc_["attention_mask"])
    assert torch.allclose(st.encode(texts, convert_to_tensor=True), expect, atol=1e-5)
    # a process without this repository loads the export through the modeling file save_pretrained copied in
    code = ("import sys, torch, json; from sentence_transformers import SentenceTransformer; "
            f"st = SentenceTransformer({str(d4)!r}, device='cpu', trust_remote_code=True, local_files_only=True); "
            "assert 'model' not in sys.modules; "
            f"print(json.dumps(st.encode({texts!r}, convert_to_tensor=True).tolist()))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    assert torch.allclose(torch.tensor(json.loads(done.stdout.strip().splitlines()[-1])), expect, atol=1e-5)


def test_no_bottleneck_chain_keeps_the_source_embedding_layer(tmp_path, enc, par):
    s3 = init_run(tmp_path, enc, par, "rec_distill", "s3.config")
    emb = s3.model.student.embeddings
    assert emb.word_projection is None and emb.word_embeddings.weight.shape == (len(VOCAB), 32)
    d3 = export(s3, tmp_path / "s3")
    s4 = init_run(tmp_path, enc, par, "rec_mcl", "s4.config", model={"pretrained": str(d3)})
    assert torch.equal(s4.model.student.embeddings.word_embeddings.weight, emb.word_embeddings.weight)
    with pytest.raises(ConfigError, match=r"has no bottleneck embedding"):
        init_run(tmp_path, enc, par, "rec_bottle_mcl", "bad.config", model={"pretrained": str(d3)})


@pytest.mark.parametrize("name,message", [
    ("rec_mcl", r"\[model\] pretrained has a bottleneck embedding \(8\); use a rec_bottle_\* method"),
    ("bottle_distill", r"bottle_distill starts from a BERT-family encoder"),
])
def test_a_bottleneck_export_is_refused_where_it_does_not_fit(tmp_path, enc, par, name, message):
    d2 = export(init_run(tmp_path, enc, par, "bottle_distill", "s2.config"), tmp_path / "s2")
    with pytest.raises(ConfigError, match=message):
        init_run(tmp_path, enc, par, name, "bad.config", model={"pretrained": str(d2)})


def test_former_albert_layout_export_is_refused_with_one_line(tmp_path, enc, par):
    from transformers import AlbertConfig, AlbertModel
    from tests.helpers import make_tokenizer
    old = tmp_path / "albert"
    AlbertModel(AlbertConfig(vocab_size=len(VOCAB), embedding_size=8, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64)).save_pretrained(old)
    make_tokenizer(VOCAB).save_pretrained(old)
    with pytest.raises(ConfigError, match=r"pretrained is an ALBERT model: the former ALBERT-layout") as err:
        init_run(tmp_path, enc, par, "rec_bottle_distill", "bad.config", model={"pretrained": str(old)})
    assert "\n" not in str(err.value)
