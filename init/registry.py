"""Registries: plain dicts, one per kind. Adding a method = one file + one line here."""
from dataset.glue_tsv import GlueTSVDataset
from dataset.jsonl import JsonlDataset
from dataset.text_lines import TextLinesDataset
from evaluator.acc_f1 import AccF1Evaluator
from evaluator.accuracy import AccuracyEvaluator
from evaluator.correlation import CorrelationEvaluator
from evaluator.glue import GlueEvaluator
from evaluator.mcc import MCCEvaluator
from evaluator.mlm import MLMEvaluator
from formatter.hf_tokenizer import HFTokenizerFormatter
from formatter.mlm import MLMFormatter
from formatter.word_vocab import WordVocabFormatter
from model.bert_cls import BertCls
from model.distilbert import DistilBERT
from model.distilled_bilstm import BiLSTMCls, DistilledBiLSTM
from model.kd import KD
from model.minilmv2 import MiniLMv2
from model.mlm_head import MLMHead
from model.pkd import PKD
from model.theseus import Theseus
from model.tinybert import TinyBERT
from optim_scheduler.optimizers import build_adam, build_adamw, build_sgd
from optim_scheduler.schedulers import build_constant, build_cosine, build_linear
from init.config import closest
from utils.errors import ConfigError

dataset_list = {"glue_tsv": GlueTSVDataset, "jsonl": JsonlDataset, "text_lines": TextLinesDataset}
formatter_list = {"hf_tokenizer": HFTokenizerFormatter}
formatter_list["word_vocab"] = WordVocabFormatter
model_list = {"bert_cls": BertCls, "kd": KD, "pkd": PKD}
model_list["theseus"] = Theseus
model_list["distilled_bilstm"], model_list["bilstm"] = DistilledBiLSTM, BiLSTMCls
model_list["tinybert"] = TinyBERT
evaluator_list = {"glue": GlueEvaluator, "accuracy": AccuracyEvaluator, "acc_f1": AccF1Evaluator,
                  "mcc": MCCEvaluator, "correlation": CorrelationEvaluator}
formatter_list["mlm"] = MLMFormatter
model_list["mlm_head"], model_list["distilbert"], model_list["minilmv2"] = MLMHead, DistilBERT, MiniLMv2
evaluator_list["mlm"] = MLMEvaluator
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
