"""ltd and ltd_embedding: the LTD path of the XiaoIce distillation framework's RNN-based compression (its
ltd-bert/distill.py): a student that is an IDF-weighted mean of word vectors, with the IDF counted over a
word-segmented corpus, distilled from a transformer teacher.

What it follows:
- the XiaoIce framework: the corpus is cut into words ([ltd] segmenter: jieba for Chinese, as its xiaoice_jieba;
  the teacher's word pieces or whitespace words for English; formatter/segmenters.py), the IDF is taken once over
  the training corpus (formatter/idf_vocab.py: scikit-learn's smooth idf, ln((1 + N) / (1 + df)) + 1) and a
  sentence is the IDF-weighted mean of its word vectors;
- Model2Vec's distill (MinishLab/model2vec) for the word table: each vocabulary item through the teacher once,
  mean-pooled, reduced by PCA to [ltd] dim (model/parts/ltd_init.py); and Model2Vec's / Tokenlearn's convention for
  the weighting: the idf is folded into the vectors, e = mean_i idf(w_i) v(w_i) (model/parts/ltd_student.py), so
  the `pieces` student exports as a plain sentence-transformers StaticEmbedding model with no code of ours.

The two registered methods differ only in what the student learns from:
- `ltd`: a classifier teacher (a fine-tuned cross-encoder, [distill] teacher); Hinton-style logit KD as model/kd.py
  (it is KD with this student: [distill] kd_loss, temperature, soft_weight, hard_weight; the teacher's logits are
  cached once; transfer-set rows train it), through a linear head on e (on [e_a, e_b, e_a * e_b, |e_a - e_b|] for
  sentence pairs);
- `ltd_embedding`: a sentence encoder (a SentenceTransformer, [distill] teacher), by regression of e (projected to
  the teacher's width by [ltd] projection_dim, L2-normalised when the teacher normalises) on the teacher's sentence
  embedding, [ltd] embedding_loss = cosine (1 - cos) or mse, each sentence of a parallel / STS row on its own
  embedding, read from the loop's teacher-embedding table (the mechanism mul_mse uses). Evaluation scores cos(e_a,
  e_b) against STS scores (evaluator/multilingual.py).

Where it departs, and why:
- the XiaoIce framework's own word vectors and its xiaoice_jieba build are not available: the table starts from the
  teacher (Model2Vec's distill) and Chinese is cut by the public jieba package;
- the weighting is Model2Vec's folded mean, not the textbook sum(idf v) / sum(idf): only the folded form is a plain
  mean over fixed rows, which the exported StaticEmbedding (an EmbeddingBag in mean mode) computes exactly;
- the vocabulary is the training corpus's words, not the teacher tokenizer's whole vocabulary as in Model2Vec: the
  IDF exists only for words the corpus has (others read as <unk>, which the export maps every unseen piece to);
- Model2Vec's Zipf / SIF weights and its swap of [CLS] and [SEP] around a piece are left out (the IDF is LTD's weight);
- a classification head (linear) replaces the XiaoIce framework's task layers, which we cannot see."""
import torch

from model.base import DistillModel, student_inputs, teacher_inputs
from model.kd import KD
from model.parts.loss import cosine_hidden_loss, hidden_mse_loss
from model.parts.ltd_init import build_ltd_student
from model.parts.ltd_student import export_ltd
from model.parts.sentence_embedding import SentenceDistill, load_sentence_teacher
from model.parts.word_ids import require_vocab
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source
from utils.errors import ConfigError

# no paper describes LTD itself: the card names the published source of the student's construction
PAPER = ("Tulkens & van Dongen 2024, Model2Vec: Fast State-of-the-Art Static Embeddings (the word table); IDF "
         "weighting as the XiaoIce framework's LTD path")


def check_vocab(config, word_vocab):
    """The run's IdfVocab, which only the ltd formatter makes (init/ltd_vocab.py builds it once)."""
    return require_vocab(config, word_vocab, formatter="ltd", reads="LTD word ids")


class LTD(KD):
    """Logit KD (model/kd.py) into the LTD student with a classification head."""

    paper = PAPER
    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        self._vocab = check_vocab(config, word_vocab)  # read by make_student inside KD.__init__
        super().__init__(config)
        self.tokenizer_path = teacher_tokenizer_source(config)

    def make_student(self, config, num_labels):
        return build_ltd_student(config, self._vocab, self.teacher, num_labels)

    def export(self, directory, tokenizer):
        """Weights with the head, words and idf (own format); with `pieces` also a sentence-transformers model of e."""
        export_ltd(self.student_model(), tokenizer, directory, load_tokenizer(self.tokenizer_path, "[distill] teacher"))


class LTDEmbedding(SentenceDistill):
    """Sentence-embedding regression into the LTD student; the teacher table, its rows and fingerprint, and the
    monolingual-sentence check are SentenceDistill's (each sentence its own target: target = same)."""

    paper = PAPER
    target = "same"
    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        DistillModel.__init__(self)  # not SentenceDistill's: the student is no HF encoder
        vocab = check_vocab(config, word_vocab)
        self.check_monolingual(config)
        teacher = load_sentence_teacher(config)
        self.set_teacher(teacher)
        self.max_length = config.get("data", "max_seq_length")
        self.normalize = teacher.normalizes
        self.check_width(config, config.get("ltd", "projection_dim") or config.get("ltd", "dim"), teacher.width)
        self.student = build_ltd_student(config, vocab, teacher, 0, self.normalize)
        self.check_width(config, self.student.width, teacher.width)
        self.loss_kind = config.get("ltd", "embedding_loss")

    @staticmethod
    def check_width(config, width, teacher_width):
        if width and width != teacher_width:
            raise ConfigError(f"{config.source('ltd', 'projection_dim')}: [ltd] projection_dim = "
                              f"{config.get('ltd', 'projection_dim')}: the student's sentence embedding is {width} wide, "
                              f"the teacher's {teacher_width}; set projection_dim = {teacher_width}")

    def embedding_loss(self, student, teacher):
        if self.loss_kind == "cosine":
            return cosine_hidden_loss(student, teacher)
        return hidden_mse_loss(student, teacher)

    def forward(self, batch):
        out_s = self.student(**student_inputs(batch))
        s_src, s_tgt = out_s.embeddings, out_s.b_embeddings
        if self.training:
            t_src, t_tgt = self.teacher_targets(batch)
            out = {"loss_src": self.embedding_loss(s_src, t_src), "loss_tgt": self.embedding_loss(s_tgt, t_tgt)}
            out["loss"] = out["loss_src"] + out["loss_tgt"]
            return out
        t_src = self.teacher(**teacher_inputs(batch)).to(s_src.dtype)
        return {"logits": torch.cat([s_src, s_tgt, t_src], dim=-1), "loss": self.embedding_loss(s_src, t_src)}

    def export(self, directory, tokenizer):
        """Weights, words and idf (own format); with `pieces` also a sentence-transformers model of e."""
        export_ltd(self.student_model(), tokenizer, directory, load_tokenizer(self.teacher.path, "[distill] teacher"))
