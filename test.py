"""Evaluate a trained run on its test split and write the results into a new folder of the run.

  python test.py --checkpoint RUN_DIR [--config C] [--gpu 0] [--logdir DIR] [--set s.k=v]

A run directory means its best student (checkpoints/best.pt, else its latest step-N.pt) and its own resolved config
(RUN_DIR/config.ini) unless --config names another. Results go to RUN_DIR/test-<time>/results.json (or --logdir), never
over what training wrote.
"""
import time
from pathlib import Path

from process.cli import base_parser, main_guard, overrides


def config_path(args, root):
    from utils.errors import ConfigError
    if args.config:
        return args.config
    if root is not None and (root / "config.ini").is_file():
        return root / "config.ini"
    raise ConfigError(f"--config: required, since --checkpoint {args.checkpoint} has no run directory with a config.ini")


def new_test_dir(base):
    """base/test-<UTC time>, a name no earlier test of this run has taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate, n = Path(base) / f"test-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = Path(base) / f"test-{stamp}-{n}"
    return candidate


def main():
    args = base_parser("Test a trained model; results go to a new folder of the run, never over its training records.",
                       config_help="INI config file; default: the run directory's own config.ini",
                       checkpoint_help="checkpoint file, or a run directory (its best checkpoints/best.pt, else its "
                                       "latest step-N.pt)", config_required=False).parse_args()
    from init.config import load_config
    from utils.errors import ConfigError
    from utils.paths import run_dir_of

    if not args.checkpoint:
        raise ConfigError("--checkpoint: required (a checkpoint file or a run directory)")
    root = run_dir_of(args.checkpoint)
    config = load_config(config_path(args, root), overrides(args))
    logdir = Path(args.logdir) if args.logdir else new_test_dir(root if root is not None else Path(args.checkpoint).parent)
    if (logdir / "results.json").exists():
        raise ConfigError(f"--logdir {logdir}: already holds a results.json; test.py writes a new folder by default "
                          "(omit --logdir) and never over earlier results")
    from process.distributed import cleanup, setup  # the bad-input checks above end before torch is imported
    from process.init_process import init_all
    from process.run_dir import check_writable, prepare
    from process.test_process import run_test
    info = setup(args.distributed, args.gpu, args.local_rank)
    try:
        if info.is_main:
            check_writable(logdir)
        run = init_all(config, info, "test", args.checkpoint)
        if info.is_main:
            prepare(logdir)
        run_test(run, logdir)
    finally:
        cleanup(info)


if __name__ == "__main__":
    main_guard(main)
