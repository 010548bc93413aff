"""Loss functions against values computed by hand (math module arithmetic, not the code under test)."""
import math

import pytest
import torch

from model.parts.loss import hard_ce_loss, logit_mse_loss, soft_kl_loss, soft_loss, task_loss


def test_kl_literal_value_T1():
    # teacher p = [0.75, 0.25] (logits [ln 3, 0]); student p = [0.5, 0.5] (logits [0, 0])
    # KL = 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5) = 0.75*0.405465 - 0.25*0.693147 = 0.130812
    loss = soft_kl_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]]), temperature=1.0)
    assert loss.item() == pytest.approx(0.130812, abs=1e-6)


def _softmax(xs):
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def test_kl_with_temperature_and_batch_mean():
    s = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    t = [[0.2, 1.5, 3.0], [2.0, 0.0, 1.0]]
    T = 2.0
    per_row = []
    for srow, trow in zip(s, t):
        ps, pt = _softmax([x / T for x in srow]), _softmax([x / T for x in trow])
        per_row.append(sum(q * math.log(q / p) for p, q in zip(ps, pt)))
    expected = sum(per_row) / 2 * T * T
    assert soft_kl_loss(torch.tensor(s), torch.tensor(t), temperature=T).item() == pytest.approx(expected, rel=1e-6)


def test_kl_zero_when_equal_and_grad_flows():
    s = torch.tensor([[0.3, -0.2]], requires_grad=True)
    loss = soft_kl_loss(s, s.detach().clone(), temperature=3.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    soft_kl_loss(s, torch.tensor([[1.0, 0.0]]), 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_logit_mse_and_hard_ce():
    # MSE over all elements: ((1-0)^2 + (2-4)^2) / 2 = 2.5
    assert logit_mse_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])).item() == pytest.approx(2.5)
    # CE of logits [0, ln 3] with label 1: -ln(3/4) = 0.287682
    assert hard_ce_loss(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1])).item() == pytest.approx(0.287682, abs=1e-6)


def test_regression_head_uses_mse_for_both_losses():
    # task loss: ((0.5-1)^2 + (2-1)^2)/2 = 0.625; soft loss ignores 'kl' for a single output
    scores = torch.tensor([[0.5], [2.0]])
    assert task_loss(scores, torch.tensor([1.0, 1.0])).item() == pytest.approx(0.625)
    assert soft_loss(scores, torch.tensor([[1.0], [1.0]]), "kl", 4.0).item() == pytest.approx(0.625)


# ---- intermediate-layer losses (TinyBERT, PKD, DistilBERT, MiniLMv2) -----------------------------

from model.parts.loss import (attention_mse_loss, cosine_hidden_loss, hidden_mse_loss, patience_loss,  # noqa: E402
                        relation_kl_loss, soft_cross_entropy)


def test_soft_cross_entropy_hand_value():
    # teacher p = [0.75, 0.25]; student logits [0, 0] -> log q = ln 0.5 each: CE = -ln 0.5 = 0.693147
    assert soft_cross_entropy(torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])).item() == pytest.approx(0.693147, abs=1e-6)
    # T = 2 on teacher [2 ln 3, 0] gives the same p; student [0, 2 ln 2] / 2 -> q = [1/3, 2/3]
    # CE = -(0.75 ln(1/3) + 0.25 ln(2/3)) = 0.75*1.098612 + 0.25*0.405465 = 0.925326
    value = soft_cross_entropy(torch.tensor([[0.0, 2 * math.log(2.0)]]), torch.tensor([[2 * math.log(3.0), 0.0]]), 2.0)
    assert value.item() == pytest.approx(0.925326, abs=1e-6)


def test_hidden_mse_masks_padding():
    s = torch.tensor([[[1.0, 1.0], [3.0, 3.0]]])  # position 1 is padding
    t = torch.tensor([[[0.0, 2.0], [0.0, 0.0]]])
    # valid position: ((1-0)^2 + (1-2)^2)/2 = 1.0; unmasked mean also counts (9+9)/2 = 9 -> (1+9)/2 = 5
    assert hidden_mse_loss(s, t, torch.tensor([[1, 0]])).item() == pytest.approx(1.0)
    assert hidden_mse_loss(s, t).item() == pytest.approx(5.0)


def test_attention_mse_ignores_padded_rows_and_columns():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[1.0, -1e4], [-1e4, -1e4]]]])  # only (0,0) is a real query/key pair
    assert attention_mse_loss(s, t, torch.tensor([[1, 0]])).item() == pytest.approx(1.0)


def test_patience_loss_normalises():
    # s = [3, 4] -> [0.6, 0.8]; t = [0, 2] -> [0, 1]; squares 0.36 and 0.04
    # second row identical directions -> 0, 0; mean over the 4 elements = 0.1
    s = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0], [5.0, 0.0]])
    assert patience_loss(s, t).item() == pytest.approx(0.1, abs=1e-6)


def test_cosine_hidden_loss():
    # position 0: orthogonal -> 1; position 1: same direction -> 0; position 2 padded
    s = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [1.0, 0.0]]])
    t = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]])
    assert cosine_hidden_loss(s, t, torch.tensor([[1, 1, 0]])).item() == pytest.approx(0.5, abs=1e-6)


def test_relation_kl_hand_value_and_masking():
    # one relation head, width 1, two tokens: x_t = [ln 3, 0] -> scores x x^T = [[ln3^2, 0], [0, 0]]
    # Use x_t = [1, 0]: t scores [[1, 0], [0, 0]] -> row 0 p = [e/(e+1), 1/(e+1)], row 1 p = [0.5, 0.5]
    # student x_s = [0, 0]: all rows uniform q = [0.5, 0.5]
    # KL row 0 = p0 ln(2 p0) + p1 ln(2 p1); row 1 = 0; mean over 2 query rows
    p0, p1 = math.e / (math.e + 1), 1 / (math.e + 1)
    expected = (p0 * math.log(2 * p0) + p1 * math.log(2 * p1)) / 2
    xt = torch.tensor([[[1.0], [0.0]]])
    xs = torch.zeros(1, 2, 1)
    assert relation_kl_loss(xs, xt, num_heads=1).item() == pytest.approx(expected, rel=1e-6)
    # with token 1 masked: only query 0 over key 0 -> both distributions are [1] -> KL 0
    assert relation_kl_loss(xs, xt, 1, torch.tensor([[1, 0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_relation_kl_allows_different_widths_and_gives_finite_grads():
    torch.manual_seed(0)
    xs = torch.randn(2, 5, 8, requires_grad=True)
    xt = torch.randn(2, 5, 12)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    loss = relation_kl_loss(xs, xt, num_heads=4, mask=mask)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0 and torch.isfinite(xs.grad).all()
    with pytest.raises(ValueError, match="not divisible"):
        relation_kl_loss(xs, xt, num_heads=3)


def test_task_loss_leaves_rows_without_a_label_out():
    from formatter.labels import NO_LABEL, label_tensor
    # classes: rows 0 and 2 labelled; CE row 0 (logits [0, ln 3], label 1) = -ln(3/4) = 0.287682,
    # row 2 (logits [0, 0], label 0) = ln 2 = 0.693147; mean 0.490415 (row 1's huge logit must not count)
    logits = torch.tensor([[0.0, math.log(3.0)], [50.0, -50.0], [0.0, 0.0]])
    labels = label_tensor([1, None, 0])
    assert labels.tolist() == [1, NO_LABEL, 0]
    assert task_loss(logits, labels).item() == pytest.approx((0.287682 + 0.693147) / 2, abs=1e-6)
    # scores: row 1 has no score (NaN); ((0.5-1)^2 + (2-1)^2)/2 = 0.625 over the other two
    scores = torch.tensor([[0.5], [9.0], [2.0]], requires_grad=True)
    targets = label_tensor([1.0, None, 1.0])
    assert math.isnan(targets[1].item())
    loss = task_loss(scores, targets)
    assert loss.item() == pytest.approx(0.625)
    loss.backward()
    assert scores.grad.view(-1).tolist() == pytest.approx([-0.5, 0.0, 1.0])  # d/ds (s-1)^2 / 2 = s - 1; none for row 1
    assert label_tensor([None, None]) is None  # an all-unlabeled batch carries no `labels` at all
