"""efficiency/cls_only.py: the [CLS]-only last layer gives the full model's logits and gradients, saves exactly
the matmul FLOPs hand arithmetic says, leaves other models alone, and KD training with it ends where
training without it ends."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification, BertModel

import efficiency.cls_only
from efficiency.cls_only import cls_only_last_layer, supports_cls_only
from tests.helpers import tiny_config_text, write_tiny_model
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


def test_hidden_states_keep_every_layer_and_the_last_one_at_cls():
    """What PKD reads: every layer's [CLS] state, the last one included (HF records hidden states from layer calls)."""
    model, batch = tiny_bert(), padded_batch()
    with torch.no_grad():
        full = model(**batch, output_hidden_states=True).hidden_states
        with cls_only_last_layer(model):
            cls = model(**batch, output_hidden_states=True).hidden_states
    assert len(cls) == len(full) == 3 and cls[-1].shape == (B, 1, H)
    for mine, theirs in zip(cls[:-1], full[:-1]):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)  # layers before the last run unchanged
    torch.testing.assert_close(cls[-1][:, 0], full[-1][:, 0], rtol=1e-5, atol=1e-5)


def linear_and_attention_flops(model, batch):
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(**batch)
    return counter.get_total_flops()


def saved_flops(b, length):
    """Full last layer: Q, K, V, O (2*b*L*H*H each), scores and context (2*b*L*L*H each), FFN (2*2*b*L*H*I).
    [CLS] only: K, V as before; Q, O and the FFN on b rows; scores and context for b query rows."""
    full_last = 4 * 2 * b * length * H * H + 2 * 2 * b * length * length * H + 2 * 2 * b * length * H * I
    cls_last = 2 * 2 * b * length * H * H + 2 * 2 * b * H * H + 2 * 2 * b * length * H + 2 * 2 * b * H * I
    return full_last - cls_last


def test_flops_saved_match_hand_arithmetic():
    model, batch = tiny_bert("eager"), padded_batch()
    full = linear_and_attention_flops(model, batch)
    with cls_only_last_layer(model):
        cls = linear_and_attention_flops(model, batch)
    assert full - cls == saved_flops(B, L)


def test_efficiency_report_counts_the_flops_the_loop_spent():
    """Per-model forward FLOPs stay the full model's; the FLOPs per training example (3 forwards) drop by 3x
    the saving, and achieved FLOP/s with them."""
    from efficiency.perf import efficiency_report
    model = tiny_bert()
    full = efficiency_report(model, None, L, 100.0, 3, False)
    cls = efficiency_report(model, None, L, 100.0, 3, False, cls_only=True)
    assert cls["student_forward_flops_per_example"] == full["student_forward_flops_per_example"]
    assert (cls["cls_only_last_layer"], full["cls_only_last_layer"]) == (True, False)
    assert full["flops_per_example"] - cls["flops_per_example"] == 3 * saved_flops(1, L)
    assert cls["achieved_flops_per_s"] == 100 * cls["flops_per_example"]


def test_other_models_run_unchanged_and_the_layer_comes_back():
    encoder = tiny_bert(cls=BertModel)  # no classification head reading position 0
    assert not supports_cls_only(encoder)
    with cls_only_last_layer(encoder):
        assert "forward" not in vars(encoder.encoder.layer[-1])
        assert encoder(**padded_batch()).last_hidden_state.shape == (B, L, H)
    model = tiny_bert()
    with pytest.raises(RuntimeError, match="boom"), cls_only_last_layer(model):
        assert "forward" in vars(model.bert.encoder.layer[-1])
        raise RuntimeError("boom")
    assert "forward" not in vars(model.bert.encoder.layer[-1])
    assert set(model.state_dict()) == set(tiny_bert().state_dict())


@pytest.mark.parametrize("method", ["kd", "pkd"])
def test_training_with_and_without_it_ends_at_the_same_student(tmp_path, tiny_data, monkeypatch, method):
    """KD (logits only) and PKD (hidden states read at [CLS] only) both run it, student and teacher."""
    teacher = write_tiny_model(tmp_path / "teacher", layers=4, dropout=0.0)
    calls = []
    forward = efficiency.cls_only.cls_only_forward
    monkeypatch.setattr(efficiency.cls_only, "cls_only_forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    students = {}
    for flag in ("true", "false"):
        text = tiny_config_text(teacher, tiny_data, method, student={"init_from": "teacher", "num_layers": 2},
                                distill={"teacher": str(teacher), "temperature": 2.0, "cache_teacher": "false"},
                                train={"epoch": 2, "cls_only_last_layer": flag})
        calls.clear()
        _, logdir = train_tiny(tmp_path, f"{method}_{flag}", text)
        students[flag] = final_student(logdir)
        # 12 steps of batch 8: student and teacher each once per step, plus the end-of-epoch evaluations
        assert (len(calls) >= 24) if flag == "true" else not calls
    for name, value in students["false"].items():
        torch.testing.assert_close(students["true"][name], value, rtol=1e-4, atol=1e-5, msg=name)
