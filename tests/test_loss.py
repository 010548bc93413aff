"""Loss functions against values computed by hand (math module arithmetic, not the code under test)."""
import math

import pytest
import torch

from model.loss import hard_ce_loss, logit_mse_loss, soft_kl_loss, soft_loss, task_loss


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
