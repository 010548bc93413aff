"""distilled_bilstm: Distilled-BiLSTM (Tang et al. 2019), and `bilstm`, its no-teacher twin.

distilled_bilstm is KD (model/kd.py) with a word-level BiLSTM student (model/parts/bilstm.py) fed by the
word_vocab formatter: loss = soft_weight * soft loss + hard_weight * CE, where Tang's soft loss is the
MSE between student and teacher logits (`[distill] kd_loss = mse`, as the shipped configs set; `kl`
stays available). The teacher reads its own BERT inputs (teacher_* batch keys).

On sentence-pair tasks (MRPC, RTE, QQP, MNLI, QNLI, STS-B) the student is Tang et al.'s siamese BiLSTM
(section 3.1, Figure 2): one shared BiLSTM encodes each sentence on its own and a ReLU classifier reads
[h1, h2, h1 * h2, |h1 - h2|]; the teacher still reads the pair as one BERT sequence. The run's vocabulary
says which (init/word_vocab.py), so formatter and student agree.

bilstm trains the identical student (same vocabulary, architecture and initial weights) on gold labels
only, as bert_cls does for transformer students.
"""
from model.base import DistillModel
from model.bert_cls import BertCls
from model.parts.bilstm import build_bilstm
from model.kd import KD
from model.parts.word_ids import require_vocab


def _check_vocab(config, word_vocab):
    """The run's word vocabulary, which only the word_vocab formatter makes (init/word_vocab.py builds it once)."""
    return require_vocab(config, word_vocab)


class DistilledBiLSTM(KD):
    paper = "Tang et al. 2019, Distilling Task-Specific Knowledge from BERT into Simple Neural Networks"
    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        self._vocab = _check_vocab(config, word_vocab)  # read by make_student inside KD.__init__
        super().__init__(config)

    def make_student(self, config, num_labels):
        return build_bilstm(config, num_labels, self._vocab, self.teacher)


class BiLSTMCls(BertCls):
    """The twin: BertCls's forward (logits + gold-label loss) over the BiLSTM student."""

    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        DistillModel.__init__(self)
        self.student = build_bilstm(config, config.get("model", "num_labels"), _check_vocab(config, word_vocab))
