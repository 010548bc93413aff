"""Registries: one plain dict per kind, name -> class or builder. Adding a method = one file in model/ + one line here."""
from dataset.glue_tsv import GlueTSVDataset
from dataset.jsonl import JsonlDataset
from dataset.jsonl_split import JsonlSplitDataset
from dataset.parallel import ParallelDataset
from dataset.text_lines import TextLinesDataset
from dataset.wikitext import WikiTextDataset
from evaluator.acc_f1 import AccF1Evaluator
from evaluator.accuracy import AccuracyEvaluator
from evaluator.correlation import CorrelationEvaluator
from evaluator.glue import GlueEvaluator
from evaluator.lm import LMEvaluator
from evaluator.mcc import MCCEvaluator
from evaluator.mlm import MLMEvaluator
from evaluator.multilingual import MultilingualEvaluator
from formatter.bipartition import BipartitionFormatter
from formatter.hf_tokenizer import HFTokenizerFormatter
from formatter.ltd import LtdFormatter
from formatter.mlm import MLMFormatter
from formatter.parallel import ParallelFormatter
from formatter.word_lm import WordLMFormatter
from formatter.word_vocab import WordVocabFormatter
from init.config import closest
from model.bert_bipartition import BertBipartition
from model.bert_cls import BertCls
from model.bottle_distill import BottleDistill
from model.dc_bert import DCBert
from model.distilbert import DistilBERT
from model.distilled_bilstm import BiLSTMCls, DistilledBiLSTM
from model.elmo_bilstm import ElmoBiLSTM, ElmoBiLSTMCls
from model.elmo_lm import ElmoLM
from model.kd import KD
from model.kd_hidden import KDHidden
from model.ltd import LTD, LTDEmbedding
from model.minilmv2 import MiniLMv2
from model.mlm_head import MLMHead
from model.mul_mse import MulMSE
from model.pkd import PKD
from model.rec_distill import RecBottleDistill, RecDistill
from model.rec_mcl import RecBottleBool, RecBottleCE, RecBottleMCL, RecBottleMSE, RecMCL
from model.theseus import Theseus
from model.tinybert import TinyBERT
from model.virt import VIRT
from optim_scheduler.optimizers import build_adam, build_adamw, build_sgd
from optim_scheduler.schedulers import build_constant, build_cosine, build_linear
from utils.errors import ConfigError

dataset_list = {
    "glue_tsv": GlueTSVDataset,
    "jsonl": JsonlDataset,
    "jsonl_split": JsonlSplitDataset,  # text matching: one JSONL file per split
    "parallel": ParallelDataset,  # parallel sentences and STS pairs (multilingual)
    "text_lines": TextLinesDataset,  # unlabeled text (general distillation)
    "wikitext": WikiTextDataset,  # WikiText token files as sentences (language-model stages)
}

formatter_list = {
    "hf_tokenizer": HFTokenizerFormatter,
    "word_vocab": WordVocabFormatter,
    "word_lm": WordLMFormatter,  # word-level language-model batches (elmo_lm)
    "mlm": MLMFormatter,
    "parallel": ParallelFormatter,
    "bipartition": BipartitionFormatter,
    "ltd": LtdFormatter,  # segmented words and their IDF (ltd, ltd_embedding)
}

model_list = {
    # fine-tuning: teachers and the no-teacher twins
    "bert_cls": BertCls,
    "bilstm": BiLSTMCls,
    "bert_bipartition": BertBipartition,
    # task distillation on GLUE-style data
    "kd": KD,
    "kd_hidden": KDHidden,  # KD plus hidden-state MSE: the benchmark's job (docs/PERFORMANCE.md)
    "distilled_bilstm": DistilledBiLSTM,
    "elmo_bilstm": ElmoBiLSTM,  # an ELMo student (the biLM of elmo_lm) distilled as Tang et al.
    "elmo_bilstm_cls": ElmoBiLSTMCls,  # its no-teacher twin
    "pkd": PKD,
    "theseus": Theseus,
    "tinybert": TinyBERT,
    "ltd": LTD,  # IDF-weighted word vectors (the XiaoIce framework's LTD) learning a classifier's logits
    # general distillation on unlabeled text
    "mlm_head": MLMHead,
    "distilbert": DistilBERT,
    "minilmv2": MiniLMv2,
    "elmo_lm": ElmoLM,  # ELMo's biLM pretraining, for elmo_bilstm
    # text matching
    "virt": VIRT,
    "dc_bert": DCBert,
    # multilingual sentence embeddings (Reimers & Gurevych 2020; Ding et al. 2022)
    "mul_mse": MulMSE,
    "bottle_distill": BottleDistill,
    "rec_distill": RecDistill,
    "rec_bottle_distill": RecBottleDistill,
    "rec_bottle_mcl": RecBottleMCL,
    "rec_mcl": RecMCL,
    "rec_bottle_mse": RecBottleMSE,
    "rec_bottle_bool": RecBottleBool,
    "rec_bottle_ce": RecBottleCE,
    "ltd_embedding": LTDEmbedding,  # the same student regressing a sentence encoder's embeddings
}

evaluator_list = {
    "glue": GlueEvaluator,
    "accuracy": AccuracyEvaluator,
    "acc_f1": AccF1Evaluator,
    "mcc": MCCEvaluator,
    "correlation": CorrelationEvaluator,
    "mlm": MLMEvaluator,
    "lm": LMEvaluator,
    "multilingual": MultilingualEvaluator,
}

optimizer_list = {"adamw": build_adamw, "adam": build_adam, "sgd": build_sgd}

scheduler_list = {"linear": build_linear, "cosine": build_cosine, "constant": build_constant}


def lookup(registry, config, section, key):
    """registry[config value], or a one-line error naming section.key and the closest name."""
    name = config.get(section, key)
    if name in registry:
        return registry[name]
    hint = closest(name, registry)
    where = config.source(section, key)
    raise ConfigError(f"{where}: [{section}] {key} = {name!r}: unknown; "
                      + (f"did you mean '{hint}'? " if hint else "") + f"known: {', '.join(sorted(registry))}")
