"""Shared command-line pieces of train.py and test.py: arguments, error handling, run setup."""
import argparse
import os
import sys

from utils.errors import KDWorkerError, one_line


def base_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", "-c", required=True, help="INI config file (or a pipeline config for train.py)")
    parser.add_argument("--checkpoint", help="checkpoint file, or a run directory (its latest checkpoint)")
    parser.add_argument("--gpu", "-g", default=None, help="GPU ids, e.g. 0 or 0,1; omit to run on CPU")
    parser.add_argument("--logdir", help="run directory for logs, checkpoints and results")
    parser.add_argument("--seed", type=int, default=None, help="random seed (overrides [train] seed)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--distributed", action="store_true", help="torch.distributed (torchrun or torch.distributed.launch)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def overrides(args):
    """--set values, plus --seed as train.seed."""
    return list(args.set) + ([f"train.seed={args.seed}"] if args.seed is not None else [])


def _prefix(kind):
    rank = os.environ.get("RANK")
    return f"{kind} (rank {rank}): " if rank not in (None, "0") else f"{kind}: "


def main_guard(fn):
    """Run fn() offline (pretrained/offline.py); known failures become one line on stderr and a distinct exit code:
    2 bad input/config (KDWorkerError), 128+N stopped by signal N after checkpointing,
    1 a lost peer rank (instead of hanging until a collective times out)."""
    from pretrained.offline import go_offline
    from process.guards import Preempted
    go_offline()
    try:
        fn()
    except KDWorkerError as err:
        print(_prefix("error") + one_line(err), file=sys.stderr)
        sys.exit(err.exit_code)
    except Preempted as stop:
        print(_prefix("stopped") + one_line(stop), file=sys.stderr)
        sys.exit(128 + stop.signum)
    except RuntimeError as err:
        import torch.distributed as dist
        text = str(err).lower()
        if not isinstance(err, dist.DistError) and "gloo" not in text and "nccl" not in text:
            raise
        print(_prefix("error") + "lost contact with another rank, stopping: " + one_line(str(err).strip().splitlines()[0][:300]),
              file=sys.stderr)
        sys.exit(1)
