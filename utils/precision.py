"""[train] precision -> the dtype it computes in: one map for autocast (process/eval_process.py) and for the
efficiency report's peak matmul (efficiency/report.py)."""
import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_dtype(config):
    return PRECISION_DTYPES[config.get("train", "precision")]
