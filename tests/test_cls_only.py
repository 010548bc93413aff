"""model/cls_only.py: the [CLS]-only last layer gives the full model's logits and gradients, saves exactly
the matmul FLOPs hand arithmetic says, leaves other models alone, and KD training with it ends where
training without it ends."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification, BertModel

from model.cls_only import ClsOnlyLayer, cls_only_last_layer, supports_cls_only
from tests.helpers import tiny_config_text
from tests.test_end_to_end import final_student, train_tiny

B, L, H, I, HEADS = 3, 7, 16, 40, 2


def tiny_bert(attn="sdpa", cls=BertForSequenceClassification):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=H, num_hidden_layers=2, num_attention_heads=HEADS,
                        intermediate_size=I, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, num_labels=3, attn_implementation=attn,
                        initializer_range=0.5)  # large weights: logits far from 0, padding matters
    return cls(config).eval()


def padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 50, (B, L))
    mask = torch.ones(B, L, dtype=torch.long)
    mask[0, 4:] = 0  # two rows padded, one full
    mask[1, 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logits_and_gradients_equal_the_full_forward(attn):
    model, batch = tiny_bert(attn), padded_batch()

    def run(enabled):
        model.zero_grad()
        with cls_only_last_layer(model, enabled):
            logits = model(**batch).logits
        (logits * torch.arange(1.0, 4.0)).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    full, full_grads = run(False)
    cls, cls_grads = run(True)
    torch.testing.assert_close(cls, full, rtol=1e-5, atol=1e-5)  # float rounding only
    for name, grad in full_grads.items():
        torch.testing.assert_close(cls_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    # the last layer's query still learns (from the [CLS] row) and the padding changed the answer
    assert cls_grads["bert.encoder.layer.1.attention.self.query.weight"].abs().sum() > 0
    batch["attention_mask"][:] = 1
    assert (model(**batch).logits - full).abs().max() > 0.1


def linear_and_attention_flops(model, batch):
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(**batch)
    return counter.get_total_flops()


def test_flops_saved_match_hand_arithmetic():
    """Full last layer: Q, K, V, O (2*B*L*H*H each), scores and context (2*B*L*L*H each), FFN (2*2*B*L*H*I).
    [CLS] only: K, V as before; Q, O and the FFN on B rows; scores and context for B query rows."""
    model, batch = tiny_bert("eager"), padded_batch()
    full = linear_and_attention_flops(model, batch)
    with cls_only_last_layer(model):
        cls = linear_and_attention_flops(model, batch)
    full_last = 4 * 2 * B * L * H * H + 2 * 2 * B * L * L * H + 2 * 2 * B * L * H * I
    cls_last = 2 * 2 * B * L * H * H + 2 * 2 * B * H * H + 2 * 2 * B * L * H + 2 * 2 * B * H * I
    assert full - cls == full_last - cls_last


def test_other_models_run_unchanged_and_the_layer_comes_back():
    encoder = tiny_bert(cls=BertModel)  # no classification head reading position 0
    assert not supports_cls_only(encoder)
    with cls_only_last_layer(encoder):
        assert not isinstance(encoder.encoder.layer[-1], ClsOnlyLayer)
        assert encoder(**padded_batch()).last_hidden_state.shape == (B, L, H)
    model = tiny_bert()
    original = model.bert.encoder.layer[-1]
    with pytest.raises(RuntimeError, match="boom"), cls_only_last_layer(model):
        assert isinstance(model.bert.encoder.layer[-1], ClsOnlyLayer)
        raise RuntimeError("boom")
    assert model.bert.encoder.layer[-1] is original
    assert set(model.state_dict()) == set(tiny_bert().state_dict())


def test_kd_training_with_and_without_it_ends_at_the_same_student(tmp_path, tiny_model_nodrop, tiny_data, monkeypatch):
    calls = []
    forward = ClsOnlyLayer.forward
    monkeypatch.setattr(ClsOnlyLayer, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    students = {}
    for flag in ("true", "false"):
        text = tiny_config_text(tiny_model_nodrop, tiny_data, "kd", student={"num_layers": 1},
                                distill={"teacher": str(tiny_model_nodrop), "temperature": 2.0, "cache_teacher": "false"},
                                train={"epoch": 2, "cls_only_last_layer": flag})
        calls.clear()
        _, logdir = train_tiny(tmp_path, f"kd_{flag}", text)
        students[flag] = final_student(logdir)
        # 6 steps of batch 8: student and teacher each once per step, plus the end-of-epoch evaluations
        assert (len(calls) >= 12) if flag == "true" else not calls
    for name, value in students["false"].items():
        assert torch.allclose(students["true"][name], value, atol=1e-5), name
