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


def main_guard(fn):
    """Run fn(); a KDWorkerError becomes one line on stderr and exit code 2."""
    try:
        fn()
    except KDWorkerError as err:
        rank = os.environ.get("RANK")
        prefix = f"error (rank {rank}): " if rank not in (None, "0") else "error: "
        print(prefix + one_line(err), file=sys.stderr)
        sys.exit(err.exit_code)
