"""A content fingerprint of a model directory, for caches keyed by the teacher's weights."""
import hashlib
from pathlib import Path


def file_fingerprint(directory):
    """sha256 over the names and bytes of a model directory's config and weight files (not its path): a copy of
    the same teacher elsewhere hits the same cache, retrained weights miss it."""
    digest = hashlib.sha256()
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix in (".json", ".safetensors", ".bin", ".txt", ".model")))
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
