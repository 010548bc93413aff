"""Evaluate a trained model on the test split and write <logdir>/results.json.

  python test.py --config C --checkpoint CKPT_OR_RUN_DIR [--gpu 0] [--logdir DIR]
"""
from pathlib import Path

from process.cli import base_parser, main_guard, overrides


def main():
    args = base_parser("Test a trained model.").parse_args()
    from init.config import load_config
    from process.distributed import cleanup, setup
    from process.init_process import init_all
    from process.run_dir import check_writable, prepare
    from process.test_process import run_test
    from utils.errors import ConfigError

    if not args.checkpoint:
        raise ConfigError("--checkpoint: required (a checkpoint file or a run directory)")
    config = load_config(args.config, overrides(args))
    info = setup(args.distributed, args.gpu, args.local_rank)
    try:
        ckpt = Path(args.checkpoint)
        logdir = args.logdir or (ckpt if ckpt.is_dir() else ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent)
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
