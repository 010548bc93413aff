"""Rank-aware logging: rank 0 prints, other ranks stay quiet unless something is wrong."""
import logging
import sys


def get_logger(rank=0):
    logger = logging.getLogger("kdw")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    return logger
