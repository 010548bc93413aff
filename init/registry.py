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
from model.kd_hidden import KDHidden  # noqa: E402  (issue 6: the benchmark job)
model_list["kd_hidden"] = KDHidden
evaluator_list = {"glue": GlueEvaluator, "accuracy": AccuracyEvaluator, "acc_f1": AccF1Evaluator,
                  "mcc": MCCEvaluator, "correlation": CorrelationEvaluator}
formatter_list["mlm"] = MLMFormatter
model_list["mlm_head"], model_list["distilbert"], model_list["minilmv2"] = MLMHead, DistilBERT, MiniLMv2
evaluator_list["mlm"] = MLMEvaluator
# multilingual sentence-embedding distillation (seed 000: mul_mse, Ding et al. 2022's multi-stage framework)
from dataset.parallel import ParallelDataset  # noqa: E402
from evaluator.multilingual import MultilingualEvaluator  # noqa: E402
from formatter.parallel import ParallelFormatter  # noqa: E402
from model.bottle_distill import BottleDistill  # noqa: E402
from model.mul_mse import MulMSE  # noqa: E402
from model.rec_distill import RecBottleDistill, RecDistill  # noqa: E402
from model.rec_mcl import RecBottleBool, RecBottleCE, RecBottleMCL, RecBottleMSE, RecMCL  # noqa: E402
dataset_list["parallel"], formatter_list["parallel"], evaluator_list["multilingual"] = \
    ParallelDataset, ParallelFormatter, MultilingualEvaluator
model_list.update({"mul_mse": MulMSE, "bottle_distill": BottleDistill, "rec_distill": RecDistill,
                   "rec_bottle_distill": RecBottleDistill, "rec_bottle_mcl": RecBottleMCL, "rec_mcl": RecMCL,
                   "rec_bottle_mse": RecBottleMSE, "rec_bottle_bool": RecBottleBool, "rec_bottle_ce": RecBottleCE})
from dataset.jsonl_split import JsonlSplitDataset  # noqa: E402  (text matching, issue 4)
from formatter.bipartition import BipartitionFormatter  # noqa: E402
from model.bert_bipartition import BertBipartition  # noqa: E402
from model.dc_bert import DCBert  # noqa: E402
from model.virt import VIRT  # noqa: E402
dataset_list["jsonl_split"], formatter_list["bipartition"] = JsonlSplitDataset, BipartitionFormatter
model_list.update({"bert_bipartition": BertBipartition, "virt": VIRT, "dc_bert": DCBert})
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
