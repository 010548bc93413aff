"""Shared machinery of the multilingual sentence-embedding methods (Reimers & Gurevych 2020's
mul_mse and Ding et al. 2022's multi-stage framework). The subclasses in model/mul_mse.py,
model/bottle_distill.py, model/rec_distill.py and model/rec_mcl.py only choose the student shape, the teacher
targets and the extra in-batch term.

Stage 1 is the teacher: any SentenceTransformer path ([distill] teacher), loaded once, frozen. Training batches
read its embeddings from a per-run table the loop builds before the first step and hands over with
set_teacher_table (process/teacher_cache.py, process/embedding_cache.py: each distinct sentence embedded once, cached
on disk by content); evaluation runs it live on the source side.
The student is an HF encoder (BERT for mul_mse, ALBERT for the bottleneck / recurrence students) with mean
pooling, L2-normalised when the teacher's embeddings are, exported as a sentence-transformers directory."""
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.base import DistillModel, teacher_inputs
from pretrained.fingerprint import file_fingerprint
from pretrained.loading import load_encoder, load_tokenizer, resolve_model_path
from pretrained.st_dense import dense_module, load_sentence_dense
from model.parts.loss import bool_sim_loss, hidden_mse_loss, in_batch_ce_loss, mcl_loss
from model.parts.recurrent_student import build_recurrent_student, drop_pooler
from efficiency.counts import count_params
from utils.errors import ConfigError
from utils.logging import get_logger

SIDES = ("input_ids", "attention_mask", "token_type_ids")


def mean_pool(hidden, mask):
    """Mean of the token vectors over non-padding positions (sentence-transformers' mean pooling)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class SentenceTeacher(nn.Module):
    """A SentenceTransformer behind the keyword interface the framework calls (teacher(**inputs)) -> (B, H)."""

    def __init__(self, model, path):
        super().__init__()
        self.st, self.path = model, path

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        return self.st(features)["sentence_embedding"]

    def get_input_embeddings(self):
        return self.st[0].auto_model.get_input_embeddings()

    @property
    def normalizes(self):
        """True when the teacher's pipeline ends in an L2 Normalize module (all-MiniLM-L6-v2's does)."""
        from sentence_transformers.models import Normalize
        return any(isinstance(module, Normalize) for module in self.st)

    @property
    def width(self):
        get = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        return get()


def load_sentence_teacher(config):
    name = config.get("distill", "teacher")
    if not name:
        raise ConfigError(f"{config.source('distill', 'teacher')}: [distill] teacher: required (a SentenceTransformer name or path)")
    path = resolve_model_path(name, "[distill] teacher")
    from sentence_transformers import SentenceTransformer
    try:
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as err:  # missing files, offline hub id, bad config: one line naming the key
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ConfigError(f"[distill] teacher = {name}: cannot load as a SentenceTransformer ({msg})") from None
    return SentenceTeacher(model, path)


class SentenceDistill(DistillModel):
    """forward(batch): train -> {"loss", "loss_en", "loss_mul"[, "loss_cl"]}; eval -> {"logits": [student source |
    student target | teacher source], "loss": MSE(student source, teacher source)}."""

    recurrent = False  # ALBERT student: layers_to_keep shared layers run `repeat` times
    bottleneck = False  # ALBERT student with a vocab x e embedding and an e -> hidden mapping
    target = "english"  # english: both sides regress on teacher(source); same: each side on teacher(itself)
    contrast = None  # in-batch term: mcl | bool | ce | None
    uses_teacher_table = True  # training reads teacher embeddings from the table the loop builds (model/base.py)
    # efficiency report: both sentences of a pair go through the student (forward + backward: 2 x 3), at the
    # source side's measured length; the teacher is read from the table, never run in a training step
    student_forwards_per_train_example = 6
    teacher_runs_in_train_step = False

    def __init__(self, config):
        super().__init__()
        self.check_monolingual(config)
        teacher = load_sentence_teacher(config)
        self.set_teacher(teacher)
        source_path = resolve_model_path(config.get("model", "pretrained"))
        source = load_encoder(source_path, "[model] pretrained")
        self.student = self.make_student(source, config)
        self.projection = make_projection(self.student.config.hidden_size, teacher.width, source_path, config)
        self.max_length = config.get("data", "max_seq_length")
        # the student ends as the teacher does: with a normalising teacher the MSE then compares unit vectors
        # (not the student's raw mean-pooled scale against unit targets), and a student started from the
        # teacher's weights starts at zero loss on the English side, as in Reimers & Gurevych 2020
        self.normalize = teacher.normalizes
        self.scale = config.get("multilingual", "scale")
        self.cl_weight = config.get("multilingual", "cl_weight")
        get_logger().info("%s student: %s, %d parameters", config.get("model", "model_name"), describe(self.student),
                          count_params(self.student))

    def check_monolingual(self, config):
        """Untranslated sentences ([data] monolingual_file) are only meaningful where each sentence is its own target
        and no term compares the two sentences of a row: MSE to the English side or an in-batch term would read two
        unrelated sentences as translations."""
        if not config.get("data", "monolingual_file"):
            return
        if self.target != "same" or self.contrast is not None or not self.uses_teacher_table:
            raise ConfigError(f"{config.source('data', 'monolingual_file')}: [data] monolingual_file: "
                              f"{config.get('model', 'model_name')} reads each row as a translation pair; untranslated "
                              "sentences are for rec_distill / rec_bottle_distill (each sentence on its own teacher target)")

    def make_student(self, source, config):
        if self.recurrent or self.bottleneck:
            return build_recurrent_student(source, config, self.bottleneck)
        return drop_pooler(source)

    def encode(self, batch, prefix=""):
        inputs = {k: batch[prefix + k] for k in SIDES if prefix + k in batch}
        pooled = mean_pool(self.student(**inputs).last_hidden_state, inputs["attention_mask"])
        if self.projection is not None:
            pooled = self.projection(pooled)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    # --- teacher table -------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_texts(self, texts):
        """Teacher embeddings (n, H) of raw texts (the cache's only source)."""
        tokenizer = load_tokenizer(self.teacher.path, "[distill] teacher")
        device = next(self.teacher.parameters()).device
        enc = tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt")
        return self.teacher(**{k: v.to(device) for k, v in enc.items() if k in SIDES}).float()

    def teacher_table_rows(self, dataset):
        """Row ids of dataset.texts the loss reads: the sources, or every sentence when each side has its own target."""
        return dataset.source_ids if self.target == "english" else list(range(len(dataset.texts)))

    def teacher_table_fingerprint(self):
        return f"{file_fingerprint(self.teacher.path)}|max_seq_length={self.max_length}"

    def teacher_targets(self, batch):
        table = self._frozen.get("teacher_table")
        if table is None:
            raise RuntimeError("teacher-embedding table not built: process/teacher_cache.py hands it over before training")
        t_src = table[batch["src_text_id"]]
        return t_src, (table[batch["tgt_text_id"]] if self.target == "same" else t_src)

    # --- losses ----------------------------------------------------------------------------------------
    def contrast_loss(self, s_src, s_tgt, t_src):
        if self.contrast == "mcl":
            return mcl_loss(s_src, s_tgt, t_src)
        if self.contrast == "bool":
            return bool_sim_loss(s_src, s_tgt)
        if self.contrast == "ce":
            return in_batch_ce_loss(s_src, s_tgt, self.scale)
        return None

    def train_loss(self, batch, s_src, s_tgt):
        t_src, t_tgt = self.teacher_targets(batch)
        out = {"loss_en": hidden_mse_loss(s_src, t_src), "loss_mul": hidden_mse_loss(s_tgt, t_tgt)}
        out["loss"] = out["loss_en"] + out["loss_mul"]
        cl = self.contrast_loss(s_src, s_tgt, t_src)
        if cl is not None:
            out["loss_cl"] = cl
            out["loss"] = out["loss"] + self.cl_weight * cl
        return out

    def forward(self, batch):
        s_src, s_tgt = self.encode(batch), self.encode(batch, "tgt_")
        if self.training:
            return self.train_loss(batch, s_src, s_tgt)
        t_src = self.teacher(**teacher_inputs(batch)).to(s_src.dtype)
        return {"logits": torch.cat([s_src, s_tgt, t_src], dim=-1), "loss": hidden_mse_loss(s_src, t_src)}

    # --- export ----------------------------------------------------------------------------------------
    def deployed_params(self):
        return super().deployed_params() + (count_params(self.projection) if self.projection is not None else 0)

    def export(self, directory, tokenizer):
        """HF weights + tokenizer + the sentence-transformers module files (Transformer -> mean Pooling, then the
        projection as a Dense module when there is one, then Normalize when the teacher ends so), so AutoModel and
        SentenceTransformer both load the student."""
        super().export(directory, tokenizer)
        write_sentence_transformers_files(directory, self.student_model().config.hidden_size, self.max_length,
                                          self.normalize, self.projection)


def make_projection(width, teacher_width, source_path, config):
    """A learned linear map from the student's width to a wider (or narrower) teacher's, after mean pooling and
    before normalisation: Reimers & Gurevych 2020's student and teacher share a width, and sentence-transformers'
    distillation recipe adds a Dense layer where they do not (e.g. a 384-wide MiniLM student under the 768-wide
    all-mpnet-base-v2). It trains with the student and ships as its Dense module (identity activation). Started from
    [model] pretrained's own Dense when that folder has one (an earlier stage's export), else nn.Linear's default
    initialisation under the run's seed. None when the widths agree."""
    saved = load_sentence_dense(source_path)
    if width == teacher_width and saved is None:
        return None
    projection = nn.Linear(width, teacher_width)
    if saved is not None:
        if tuple(saved.weight.shape) != (teacher_width, width):
            raise ConfigError(f"{config.source('model', 'pretrained')}: [model] pretrained ends in a Dense "
                              f"{saved.in_features} -> {saved.out_features}, but the student is {width} wide and the "
                              f"teacher's embedding {teacher_width}")
        projection.load_state_dict(saved.state_dict())
    get_logger().info("projection %d -> %d after pooling (the teacher's width), %s", width, teacher_width,
                      "from [model] pretrained's Dense" if saved is not None else "newly initialised")
    return projection


def describe(student):
    c = student.config
    if not hasattr(c, "inner_group_num"):  # a plain encoder; the recurrent student's config is ALBERT-shaped
        return f"{c.model_type}, {c.num_hidden_layers} layers, hidden {c.hidden_size}"
    emb = f"bottleneck word table {c.vocab_size}x{c.embedding_size}->{c.hidden_size}" if c.embedding_size != c.hidden_size \
        else f"embedding {c.vocab_size}x{c.hidden_size}"
    return f"{c.model_type}, {emb}, {c.inner_group_num} shared layers x {c.num_hidden_layers} repeats, hidden {c.hidden_size}"


def write_sentence_transformers_files(directory, width, max_length, normalize=False, projection=None):
    """modules.json and the module folders: Transformer (the folder itself) -> mean Pooling [-> Dense, the
    projection, identity activation] [-> Normalize]."""
    d = Path(directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if projection is not None:
        (d / "2_Dense").mkdir(exist_ok=True)
        dense_module(projection).save(str(d / "2_Dense"))
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    if normalize:
        i = len(modules)
        modules.append({"idx": i, "name": str(i), "path": f"{i}_Normalize", "type": "sentence_transformers.models.Normalize"})
    (d / "modules.json").write_text(json.dumps(modules, indent=2))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length, "do_lower_case": False}))
    (d / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": width, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
