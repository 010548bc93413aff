"""elmo_bilstm: the task stage of the ELMo path of the XiaoIce framework's RNN compression (its elmo/elmo_distill.py):
an ELMo student (Peters et al. 2018) learns a fine-tuned teacher's logits as Tang et al. 2019 do; and
`elmo_bilstm_cls`, its no-teacher twin.

elmo_bilstm is KD (model/kd.py) with the ELMo student of model/parts/elmo_student.py: the biLM that the elmo_lm
stage pretrained ([model] pretrained), frozen by default with its scalar mix trained, feeding Tang's BiLSTM and ReLU
classifier (siamese for sentence pairs, so STS-B regresses the teacher's pair score through two ELMo-encoded
sentences). loss = soft_weight * soft loss + hard_weight * task loss; Tang's soft loss is the MSE between student
and teacher logits (`[distill] kd_loss = mse`, as the shipped configs set). The teacher reads its own BERT inputs
(teacher_* batch keys). The run's words are the biLM's (`[word_vocab] source = pretrained`), so every id means
what it meant in pretraining. The XiaoIce framework's ELMo files cannot be installed here: the biLM is our own,
pretrained at small scale (model/parts/bilm.py lists the departures).

elmo_bilstm_cls trains the identical student (same biLM, vocabulary, architecture and initial weights) on gold
labels only, as bilstm does for Distilled-BiLSTM."""
from model.base import DistillModel
from model.bert_cls import BertCls
from model.kd import KD
from model.parts.elmo_student import build_elmo_student
from model.parts.word_ids import require_vocab
from utils.errors import ConfigError

PAPER = "Peters et al. 2018, Deep contextualized word representations; distilled as Tang et al. 2019"


def _check_vocab(config, word_vocab):
    """The biLM's own words, read by the word_vocab formatter: ids must mean what they meant in pretraining."""
    name = config.get("model", "model_name")
    require_vocab(config, word_vocab)
    if config.get("word_vocab", "source") != "pretrained":
        raise ConfigError(f"{config.source('word_vocab', 'source')}: [word_vocab] source = "
                          f"{config.get('word_vocab', 'source')}: model '{name}' reads the words its biLM was trained "
                          "on; set pretrained")
    return word_vocab


class ElmoBiLSTM(KD):
    paper = PAPER
    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        self._vocab = _check_vocab(config, word_vocab)  # read by make_student inside KD.__init__
        super().__init__(config)

    def make_student(self, config, num_labels):
        return build_elmo_student(config, num_labels, self._vocab)


class ElmoBiLSTMCls(BertCls):
    """The twin: BertCls's forward (logits + gold-label loss) over the ELMo student."""

    paper = PAPER
    reads_word_ids = True

    def __init__(self, config, word_vocab=None):
        DistillModel.__init__(self)
        self.student = build_elmo_student(config, config.get("model", "num_labels"), _check_vocab(config, word_vocab))
