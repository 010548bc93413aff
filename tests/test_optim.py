"""Optimizer groups and LR schedules against hand-computed multipliers."""
import math

import pytest
import torch

from init.config import load_config_text
from init.registry import optimizer_list, scheduler_list


def make(kind, total=10, **train):
    text = "[model]\nmodel_name = bert_cls\n[train]\nlearning_rate = 1.0\n" + "".join(f"{k} = {v}\n" for k, v in train.items())
    config = load_config_text(text + f"lr_scheduler = {kind}\n")
    layer = torch.nn.Linear(2, 2)
    norm = torch.nn.LayerNorm(2)
    params = [("dense.weight", layer.weight), ("dense.bias", layer.bias), ("LayerNorm.weight", norm.weight)]
    opt = optimizer_list[config.get("train", "optimizer")](params, config)
    return opt, scheduler_list[kind](opt, config, total)


def lrs(opt, sched, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_no_decay_groups():
    opt, _ = make("constant", weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and len(decay["params"]) == 1  # only the weight matrix
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 2  # bias, LayerNorm.weight


def test_linear_warmup_then_decay():
    # warmup 2 of 10 steps: 0, 0.5, then (10-s)/8 for s = 2..9
    assert lrs(*make("linear", warmup_steps=2), 10) == pytest.approx([0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


def test_cosine_and_constant():
    cos = lrs(*make("cosine", warmup_ratio=0.0), 5)
    assert cos == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(5)])
    assert lrs(*make("constant", warmup_steps=4), 6) == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)])
def test_optimizer_choice(name, cls):
    opt, _ = make("constant", optimizer=name)
    assert type(opt) is cls


@pytest.mark.parametrize("grad_size", [10.0, 1e-3])  # clipping active / inactive at max_norm 1
def test_clipping_inside_the_fused_kernel_equals_clip_grad_norm(grad_size):
    """Gradient norms change from step to step (Adam is blind to one constant scale), so a wrong clip shows."""
    from process.train_process import clip_gradients, clips_in_kernel
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    grads = [[grad_size * (k + 1) ** 2 * torch.randn(7, 5), grad_size * (k + 1) ** 2 * torch.randn(5)] for k in range(3)]
    results = {}
    for how in ("clip_grad_norm", "in_kernel", "none"):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}],
                                      lr=0.1, fused=True)
        assert clips_in_kernel(optimizer)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            if how != "none":
                clip_gradients(optimizer, params, 1.0, how == "in_kernel")
            optimizer.step()
        results[how] = torch.cat([p.detach().flatten() for p in params])
    torch.testing.assert_close(results["in_kernel"], results["clip_grad_norm"], rtol=1e-6, atol=1e-7)
    clipped = not torch.allclose(results["none"], results["clip_grad_norm"], atol=1e-4)
    assert clipped == (grad_size > 1)  # the test can tell clipping from none
    assert not clips_in_kernel(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], foreach=True))
