"""Keep freed memory in the process on glibc (Linux) instead of handing it back to the OS.

glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh mmap()s and unmaps them on free.
A training step frees and re-allocates the same large buffers every step (the 47 MB word-embedding
gradient of a BERT-base-vocabulary student, activations of long batches), so every step page-faults
and zero-fills them again. With mmap off and heap trimming off, freed blocks are reused: the CPU `kd`
benchmark job runs 10-14% faster (docs/PERFORMANCE.md). The price is that RSS stays at its peak until the
process exits. Other C libraries are left alone."""
import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc <malloc.h>
_done = []


def keep_freed_memory(enabled=True):
    """Switch glibc's mmap and trimming off for this process (once); returns whether it did."""
    if not enabled or _done or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return bool(_done)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    except (OSError, AttributeError):
        return False
    if ok:
        _done.append(True)
    return ok
