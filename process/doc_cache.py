"""Two-tower evaluation as deployed: every distinct document of the split is encoded once (offline) into a
cache; each query then runs only the online part (query tower + head) against its document's cached entry.

Metrics come from the cached path (they equal the direct path's up to float rounding: the same modules on
the same inputs). The report adds the cost per query: online FLOPs and measured batch-1 CPU latency of the
online part, and the offline cost per document, so users see what serving costs once documents are indexed."""
import time

import numpy as np
import torch

from model.base import unwrap
from model.parts.loss import task_loss
from model.parts.match_common import tower_inputs
from process.eval_process import to_device
from efficiency.counts import latency_ms


def doc_table(model, formatter, texts, batch_size, device):
    """{key: tensor (n_docs, ...)} of encode_docs over the distinct texts, in order."""
    parts = []
    for start in range(0, len(texts), batch_size):
        inputs = formatter.encode_docs(texts[start:start + batch_size])
        inputs = to_device({"input_ids": inputs["b_input_ids"], "attention_mask": inputs["b_attention_mask"]}, device)
        parts.append(model.encode_docs(inputs))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def index_docs(dataset, formatter):
    """(distinct doc texts in first-seen order, doc row of every example)."""
    rows, texts, of_example = {}, [], []
    for i in range(len(dataset)):
        doc = formatter.sides(dataset[i])[1]
        if doc not in rows:
            rows[doc] = len(texts)
            texts.append(doc)
        of_example.append(rows[doc])
    return texts, torch.tensor(of_example, dtype=torch.long)


@torch.inference_mode()
def evaluate_through_cache(run, split="test"):
    """(metrics, cost report) of a two-tower model on `split` through the document cache (one process)."""
    model = unwrap(run.model)
    model.eval()
    loader = run.loaders[split]
    formatter, data = loader.collate_fn, loader.dataset
    device = run.info.device
    start = time.perf_counter()
    texts, doc_of = index_docs(data, formatter)
    table = doc_table(model, formatter, texts, run.config.get("eval", "batch_size"), device)
    offline_s = time.perf_counter() - start
    indices, logits, labels, loss_sum = [], [], [], 0.0
    start = time.perf_counter()
    for batch in loader:
        batch = to_device(batch, device)
        rows = doc_of[batch["index"].cpu()].to(device)
        out = model.score(tower_inputs(batch, "a"), {k: v[rows] for k, v in table.items()})
        indices.append(batch["index"].cpu())
        logits.append(out.float().cpu())
        if "labels" in batch:
            labels.append(batch["labels"].cpu())
            loss_sum += float(task_loss(out, batch["labels"])) * batch["index"].numel()
    online_s = time.perf_counter() - start
    index = torch.cat(indices).numpy()
    order = np.argsort(index, kind="stable")
    all_logits = torch.cat(logits).numpy()[order]
    metrics = {"examples": int(len(index))}
    if labels:
        gold = torch.cat(labels).numpy()[order]
        metrics.update({k: round(float(v), 6) for k, v in run.evaluator(all_logits, gold).items()})
        metrics["loss"] = round(loss_sum / max(1, len(index)), 6)
    flops = model.analytic_flops()
    report = {"documents": len(texts), "queries": int(len(index)), "offline_s": round(offline_s, 3),
              "online_s": round(online_s, 3), "offline_flops_per_doc": int(flops["offline"]),
              "online_flops_per_query": int(flops["online"])}
    n = run.config.get("eval", "latency_batches")
    if n:
        report.update(online_latency(model, formatter, data, doc_of, table, n, device))
    return metrics, report


def online_latency(model, formatter, data, doc_of, table, n, device):
    """Median batch-1 latency (ms) of the online part (query tower + head on a cached document) and of
    encoding one document, over the first n examples."""
    class Online(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, a_inputs, docs):
            return model.score(a_inputs, docs)

    class Offline(Online):
        def forward(self, **inputs):
            return model.encode_docs(inputs)

    queries, docs = [], []
    for i in range(min(n, len(data))):
        batch = to_device(formatter([dict(data[i], index=i)]), device)
        row = doc_of[i:i + 1].to(device)
        queries.append({"a_inputs": tower_inputs(batch, "a"), "docs": {k: v[row] for k, v in table.items()}})
        docs.append(tower_inputs(batch, "b"))
    return {"online_latency_ms": latency_ms(Online(), queries), "offline_latency_ms_per_doc": latency_ms(Offline(), docs)}
