"""Parameters, FLOPs per example and CPU latency of a text-matching model (the VIRT paper's eval_flops_* figures).

  python tools/flops.py --config C [--set section.key=value ...] [--checkpoint RUN_DIR] [--repeats 20] [--json]

At the configured lengths ([match] max_seq_length_query / max_seq_length_doc), split into the offline part
(the document side, computed once per document and cached; 0 for a cross-encoder) and the online part (per
query, given the cached document). FLOPs are counted analytically (efficiency/flops.py) and measured with
torch.utils.flop_counter.FlopCounterMode on the same modules; the two must agree within 5%. Latency is the
median wall time at batch size 1 on this machine's CPU. Weights do not change any of this, so --checkpoint is
optional (a random-head model of the same shape is measured)."""
import argparse
import json
import statistics
import time


def num_labels(config):
    from process.pipeline import declared_num_labels
    labels = declared_num_labels(config)
    if labels is None:
        from process.init_process import build_dataset, label_count
        labels = label_count(build_dataset(config, "train"))
    config.set("model", "num_labels", labels)


def build(config, checkpoint=None):
    import torch
    from init.registry import lookup, model_list
    num_labels(config)
    torch.manual_seed(0)
    model = lookup(model_list, config, "model", "model_name")(config)
    if checkpoint:
        from process.checkpoint import find_checkpoint
        model.load_trainable(find_checkpoint(checkpoint, prefer_best=True)[1])
    if model.analytic_flops() is None:
        from utils.errors import ConfigError
        raise ConfigError(f"[model] model_name = {config.get('model', 'model_name')}: tools/flops.py covers the matching "
                          "models (bert_bipartition, virt, dc_bert)")
    return model.eval()


def median_ms(fn, repeats, warmup=3):
    import torch
    times = []
    with torch.inference_mode():
        for i in range(repeats + warmup):
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def report(model, repeats=20):
    """{"params", "params_encoder", "lengths", "analytic", "measured", "latency_ms"} of one model."""
    from efficiency.counts import count_params
    from efficiency.flops import measured_flops
    analytic = {k: int(v) for k, v in model.analytic_flops().items()}
    probes = model.flops_probes()
    measured = {part: int(measured_flops(fn, model)) for part, fn in probes.items()}
    measured.setdefault("offline", 0)
    lengths = getattr(model, "lengths", None) or (model.query_length, model.doc_length)
    out = {"model": type(model).__name__, "params": count_params(model), "params_encoder": count_params(model.student_model()),
           "lengths": {"query": lengths[0], "doc": lengths[1]}, "analytic": analytic, "measured": measured,
           "latency_ms": {part: median_ms(fn, repeats) for part, fn in probes.items()} if repeats else {}}
    out["agreement"] = {part: (measured[part] / analytic[part] if analytic[part] else 1.0) for part in analytic}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--checkpoint")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch
    from init.config import load_config
    torch.set_num_threads(1)
    rep = report(build(load_config(args.config, args.set), args.checkpoint), args.repeats)
    if args.json:
        print(json.dumps(rep))
        return
    print(f"{rep['model']}: {rep['params']:,} parameters ({rep['params_encoder']:,} in the encoder); "
          f"query {rep['lengths']['query']} tokens, document {rep['lengths']['doc']} tokens")
    print("| part | FLOPs (analytic) | FLOPs (FlopCounterMode) | ratio | CPU ms, batch 1 |")
    print("|---|---|---|---|---|")
    for part in ("offline", "online"):
        print(f"| {part} | {rep['analytic'].get(part, 0):,} | {rep['measured'].get(part, 0):,} | "
              f"{rep['agreement'].get(part, 1.0):.4f} | {rep['latency_ms'].get(part, '-')} |")


if __name__ == "__main__":
    from process.cli import main_guard
    main_guard(main)
