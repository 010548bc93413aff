"""Dynamic padding, pair encoding, separate teacher inputs, and the layer-selection helper."""
import pytest
import torch

from formatter.hf_tokenizer import HFTokenizerFormatter
from init.config import load_config_text
from model.parts.student import cut_layers
from pretrained.loading import load_classifier
from model.parts.layer_map import select_layers
from pretrained.loading import load_tokenizer
from tests.helpers import make_tokenizer, tiny_config_text, write_tiny_model
from utils.errors import ConfigError


def examples(*texts, pair=False):
    return [{"text_a": t, "text_b": "good film" if pair else None, "label": i % 2, "index": i} for i, t in enumerate(texts)]


def test_dynamic_padding_pads_to_the_longest_in_batch(tiny_model, tiny_data):
    fmt = HFTokenizerFormatter(load_config_text(tiny_config_text(tiny_model, tiny_data)), "train")
    short = fmt(examples("good", "bad movie"))
    assert short["input_ids"].shape == (2, 4)  # [CLS] bad movie [SEP]; not max_seq_length=16
    assert short["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert short["input_ids"][0, 3].item() == 0  # [PAD]
    long = fmt(examples("the movie was really quite good and the story very fun " * 3, "bad"))
    assert long["input_ids"].shape[1] == 16  # truncated at max_seq_length
    assert short["labels"].tolist() == [0, 1] and short["index"].tolist() == [0, 1]


def test_pair_encoding_uses_segment_ids(tiny_model, tiny_data):
    fmt = HFTokenizerFormatter(load_config_text(tiny_config_text(tiny_model, tiny_data)), "train")
    batch = fmt(examples("bad", pair=True))
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 1]]  # [CLS] bad [SEP] good film [SEP]


def test_separate_teacher_inputs_only_when_vocabularies_differ(tmp_path, tiny_model, tiny_data):
    same = load_config_text(tiny_config_text(tiny_model, tiny_data, "kd", distill={"teacher": str(tiny_model)}))
    assert "teacher_input_ids" not in HFTokenizerFormatter(same, "train")(examples("good"))
    other = write_tiny_model(tmp_path / "other")
    vocab = sorted(load_tokenizer(str(other)).get_vocab().items(), key=lambda kv: kv[1])
    words = [w for w, _ in vocab]
    make_tokenizer(words[:5] + ["extra"] + words[5:]).save_pretrained(other)  # every word id shifted by one
    differ = load_config_text(tiny_config_text(tiny_model, tiny_data, "kd", distill={"teacher": str(other)}))
    batch = HFTokenizerFormatter(differ, "train")(examples("good"))
    assert batch["teacher_input_ids"][0, 1].item() == batch["input_ids"][0, 1].item() + 1


@pytest.mark.parametrize("n,k,how,expected", [
    (6, 2, "uniform", [2, 5]), (12, 4, "uniform", [2, 5, 8, 11]), (6, 3, "first", [0, 1, 2]),
    (6, 2, "last", [4, 5]), (6, 0, "uniform", [0, 1, 2, 3, 4, 5]),
])
def test_select_layers(n, k, how, expected):
    assert select_layers(n, k, how) == expected


def test_select_layers_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"layer_list: layer 6 out of range; the source has layers 0..5"):
        select_layers(6, 2, explicit=[1, 6])
    with pytest.raises(ConfigError, match=r"num_layers = 8: the source has only 6 layers"):
        select_layers(6, 8)


def test_cut_layers_copies_the_chosen_layers(tiny_model):
    source = load_classifier(str(tiny_model), "test")
    student = cut_layers(source, [1])
    src, dst = source.state_dict(), student.state_dict()
    assert student.config.num_hidden_layers == 1
    assert torch.equal(dst["bert.encoder.layer.0.attention.self.query.weight"], src["bert.encoder.layer.1.attention.self.query.weight"])
    assert torch.equal(dst["classifier.weight"], src["classifier.weight"])
    assert torch.equal(dst["bert.embeddings.word_embeddings.weight"], src["bert.embeddings.word_embeddings.weight"])


def test_missing_local_model_path_is_named_by_its_key(tmp_path):
    from pretrained.loading import looks_local, resolve_model_path
    from utils.errors import ConfigError
    assert looks_local("runs/general/tinybert") and looks_local("./m") and looks_local(str(tmp_path / "x"))
    assert not looks_local("bert-base-uncased") and not looks_local("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError) as err:
        resolve_model_path("runs/never/made", "[model] pretrained")
    assert str(err.value) == ("[model] pretrained = runs/never/made: no such directory (relative paths are taken "
                              "from the current directory or the repository)")
