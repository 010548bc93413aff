"""Feature capture: hooks see the real q/k/v, scores match the model's own attention, bad layers name the key."""
import pytest
import torch

from model.parts.features import attention_scores, capture_qkv, check_layer, encoder_layers, hidden_states
from pretrained.loading import load_classifier
from utils.errors import ConfigError


@pytest.fixture
def model(tiny_model_nodrop):
    return load_classifier(str(tiny_model_nodrop), "test", attn_implementation="eager").eval()


def test_hidden_states_and_layers(model):
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    _, hidden = hidden_states(model, inputs)
    assert len(hidden) == len(encoder_layers(model)) + 1 == 3 and hidden[-1].shape == (1, 4, 32)


def test_scores_from_captured_qk_match_model_attention(model):
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    with torch.no_grad(), capture_qkv(model, [1], which=("query", "key")) as store:
        out = model(**inputs, output_attentions=True)
    scores = attention_scores(store[(1, "query")], store[(1, "key")], num_heads=2, mask=inputs["attention_mask"])
    assert torch.allclose(scores.softmax(-1), out.attentions[1], atol=1e-6)
    assert len(model.bert.encoder.layer[1].attention.self.query._forward_hooks) == 0  # hooks removed


def test_bad_layer_index_lists_the_range(model):
    with pytest.raises(ConfigError, match=r"\[minilmv2\] teacher_layer_index = 7: BertForSequenceClassification has layers 0..1"):
        check_layer(model, 7, "[minilmv2] teacher_layer_index")
    assert check_layer(model, -1, "x") == 1
