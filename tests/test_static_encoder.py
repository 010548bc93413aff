"""deploy/static_encoder.py: an exported static student encoded without sentence-transformers gives the very numbers
SentenceTransformer(DIR).encode gives, and the very ids of the tokenizers library, whatever the text."""
import json
import random

import pytest
import torch

from deploy.static_encoder import StaticEncoder
from utils.errors import ConfigError

WORDS = ["the", "a", "film", "was", "good", "bad", "not", "very", "long", "play", "##ing", "##ed", "##s", "un", "##able",
         "to", "man", "eat", "##s", "food", ".", ",", "!", "?", "'", "-", "(", ")", "0", "1", "2", "caf", "##e", "na",
         "##ive", "北", "京", "is", "big", "c", "+", "&", "r", "_", "~", "{", "}", "x", "##x"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXTS = ["", "The film was good.", "A man eats food!", "playing unable", "Not VERY long, (2) films?", "Hello [MASK] world",
         "[mask] lowercase", "naïve café", "tab\there\nnew\rline", "x" * 150, "C++ & R_2 ~{}", "北京 is big",
         "zzz unknownword", "ctrl\x01char", "del\x7fchar", "  spaces   around  ", "it's un-able"]


def tokenizer():
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + WORDS))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(SPECIALS)
    return tok


def export(tmp_path, dense="identity", normalize=True):
    """A static sentence-transformers folder as ltd exports one: StaticEmbedding, Dense?, Normalize?"""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, StaticEmbedding
    tok = tokenizer()
    table = torch.randn(tok.get_vocab_size(), 8, generator=torch.Generator().manual_seed(0))
    modules = [StaticEmbedding(tok, embedding_weights=table)]
    if dense:
        act = torch.nn.Identity() if dense == "identity" else torch.nn.Tanh()
        modules.append(Dense(8, 6, activation_function=act))
        torch.nn.init.normal_(modules[-1].linear.weight, generator=torch.Generator().manual_seed(1))
    if normalize:
        modules.append(Normalize())
    path = tmp_path / f"static_{dense}_{normalize}"
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


def fuzz(n=400, seed=0):
    rng = random.Random(seed)
    pool = list("abcdefxyzABC019 .,!?'-()[]_~{}+&\t\n") + ["é", "北", "\x01", "\x7f", "ß", "İ", "[MASK]", "film", "ing"]
    return [("".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))) for _ in range(n)]


@pytest.mark.parametrize("dense, normalize", [("identity", True), ("tanh", False), (None, True)])
def test_the_same_embeddings_as_sentence_transformers(tmp_path, dense, normalize):
    from sentence_transformers import SentenceTransformer
    path = export(tmp_path, dense, normalize)
    texts = TEXTS + fuzz(200)
    ours = StaticEncoder(path).encode(texts, batch_size=7)
    theirs = SentenceTransformer(str(path), device="cpu").encode(texts, batch_size=64, convert_to_tensor=True)
    assert ours.shape == theirs.shape == (len(texts), 6 if dense else 8)
    assert torch.equal(ours, theirs)


def test_the_same_ids_as_the_tokenizers_library_and_the_fast_path_runs(tmp_path):
    enc = StaticEncoder(export(tmp_path))
    assert enc.fast
    texts = TEXTS + fuzz(2000, seed=1)
    assert [enc.ids(t) for t in texts] == [e.ids for e in enc.tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert enc.memo["zzz"] == [enc.tokenizer.token_to_id("[UNK]")]  # a word outside the vocabulary, remembered ...
    assert enc.memo["playing"] == [enc.tokenizer.token_to_id(w) for w in ("play", "##ing")]  # ... as WordPiece split it
    assert "naïve" not in enc.memo  # a non-ASCII text went through the library
    fresh = StaticEncoder(tmp_path / "static_identity_True", remember=0)
    assert [fresh.ids(t) for t in texts] == [enc.ids(t) for t in texts] and "zzz" not in fresh.memo
    assert len(fresh.memo) == fresh.vocab_words  # nothing remembered beyond the vocabulary's whole words


def test_another_tokenizer_takes_the_library_path(tmp_path):
    from tokenizers import normalizers
    path = export(tmp_path)
    first = json.loads((path / "modules.json").read_text())[0]["path"]  # "" in sentence-transformers 6's layout
    tok_file = path / first / "tokenizer.json"
    tok = tokenizer()
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)  # cased: the ASCII rules would be wrong
    tok.save(str(tok_file))
    enc = StaticEncoder(path)
    assert not enc.fast
    assert [enc.ids(t) for t in TEXTS] == [e.ids for e in tok.encode_batch(TEXTS, add_special_tokens=False)]


def test_a_folder_that_is_no_static_model_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"modules.json: not a sentence-transformers folder"):
        StaticEncoder(tmp_path)
    (tmp_path / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "0", "type": "x.Transformer"}]')
    with pytest.raises(ConfigError, match=r"modules.json: the first module is not a StaticEmbedding; this is no static "
                                          r"model$"):
        StaticEncoder(tmp_path)
