"""The process's peak resident memory so far, for the teacher-cache pass and each epoch's log line (what a user
sizing a machine for a 110M teacher asks first). getrusage's ru_maxrss is a high-water mark over the process's life:
the figure after the cache pass covers loading and the pass; after an epoch, everything up to it."""
import resource
import sys


def peak_rss_mb():
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)
