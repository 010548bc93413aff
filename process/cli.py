"""Shared command-line pieces of train.py and test.py: arguments, error handling, run setup."""
import argparse
import os
import sys

from utils.errors import KDWorkerError, Preempted, one_line


def base_parser(description, config_help="INI config file (or a pipeline config for train.py)",
                checkpoint_help="checkpoint file, or a run directory (its latest checkpoints/step-N.pt)", config_required=True):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", "-c", required=config_required, help=config_help)
    parser.add_argument("--checkpoint", help=checkpoint_help)
    parser.add_argument("--gpu", "-g", default=None, help="GPU ids, e.g. 0 or 0,1; omit to run on CPU")
    parser.add_argument("--logdir", help="run directory for logs, checkpoints and results")
    parser.add_argument("--seed", type=int, default=None, help="random seed (overrides [train] seed)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per process (overrides [train] num_threads; default: $OMP_NUM_THREADS, else "
                             "the cores this process may run on)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--distributed", action="store_true", help="torch.distributed (torchrun or torch.distributed.launch)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def overrides(args):
    """--set values, plus --seed as train.seed and --threads as train.num_threads."""
    return (list(args.set) + ([f"train.seed={args.seed}"] if args.seed is not None else [])
            + ([f"train.num_threads={args.threads}"] if args.threads is not None else []))


def _prefix(kind):
    rank = os.environ.get("RANK")
    return f"{kind} (rank {rank}): " if rank not in (None, "0") else f"{kind}: "


def main_guard(fn):
    """Run fn() offline (pretrained/offline.py); known failures become one line on stderr and a distinct exit code:
    2 bad input/config (KDWorkerError), 3 an export that failed its parity check (deploy/parity.py),
    28 a full disk or quota during a save (DiskFullError),
    128+N stopped by signal N after checkpointing,
    1 a lost peer rank (instead of hanging until a collective times out)."""
    from pretrained.offline import go_offline
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
        exit_now(1)


def exit_now(code):
    """End the process at once with `code`. After a peer is lost, a normal interpreter exit can block for good in the
    collective library's teardown (a thread or destructor still waiting on the dead peer); checkpoints are written
    atomically, so nothing is lost by skipping it. Streams are flushed first so the one line is never cut."""
    import logging
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)
