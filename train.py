"""Train a model or a multi-stage pipeline from an INI config.

  python train.py --config C [--checkpoint CKPT] [--gpu 0] [--do_test] [--logdir DIR] [--overwrite] [--seed N] [--set s.k=v]
  torchrun --nproc_per_node=2 train.py --config C --distributed
"""
from process.cli import base_parser, main_guard, overrides


def main():
    parser = base_parser("Train (distil) a model from an INI config.")
    parser.add_argument("--do_test", action="store_true", help="test the best student on the test split after training")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in a --logdir that holds another run: the old run is moved to DIR.old-<time>")
    args = parser.parse_args()
    from init.config import is_pipeline, load_config

    if is_pipeline(args.config):
        if args.checkpoint:
            from utils.errors import ConfigError
            raise ConfigError("--checkpoint: a pipeline resumes its unfinished stage by itself; re-run with the same --logdir")
        from process.distributed import cleanup, setup
        from process.pipeline import run_pipeline
        info = setup(args.distributed, args.gpu, args.local_rank)
        try:
            run_pipeline(args.config, info, args.logdir or "runs/pipeline", overrides(args), args.do_test, args.overwrite)
        finally:
            cleanup(info)
        return
    config = load_config(args.config, overrides(args))  # a config error ends here, before torch is even imported
    from process.distributed import cleanup, setup
    from process.train_entry import train_run
    info = setup(args.distributed, args.gpu, args.local_rank, config.get("train", "dist_timeout_s"))
    try:
        train_run(config, info, args.logdir or config.get("output", "logdir"), args.checkpoint, args.do_test, args.overwrite)
    finally:
        cleanup(info)


if __name__ == "__main__":
    main_guard(main)
