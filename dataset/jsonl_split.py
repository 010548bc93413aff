"""A JSONL file split deterministically into train and held-out parts (BoolQ: only its public dev file exists).

Line i (0-based, among non-empty lines) of [data] train_file goes to the held-out part when
i % [match] split_every == split_every - 1, else to train (dataset/heldout.py, the rule the GLUE reader's
[data] heldout_every uses too). With split_every = 5 BoolQ's 3,270 dev questions give 2,616 train / 654
held-out. Field names and labels come from [data] as for jsonl."""
from dataset.heldout import split_rows
from dataset.jsonl import read_jsonl
from dataset.text_lines import ExamplesDataset, check_not_empty
from utils.errors import ConfigError
from utils.paths import data_file


class JsonlSplitDataset(ExamplesDataset):
    def __init__(self, config, mode):
        self.mode = mode
        every = config.get("match", "split_every")
        text_a = config.get("data", "text_a_field")
        if not text_a:
            raise ConfigError("[data] text_a_field: required for JSONL data but empty")
        label_field = config.get("data", "label_field") or None
        self.label_list = list(config.get("data", "label_list") or []) or None
        self.is_regression = label_field is not None and self.label_list is None
        self.path = data_file(config, "train")
        rows = read_jsonl(self.path, text_a, config.get("data", "text_b_field") or None, label_field, self.label_list)
        self.examples = check_not_empty(split_rows(rows, every, mode), self.path)
        limit = config.get("data", "max_examples")
        if mode == "train" and limit > 0:
            self.examples = self.examples[:limit]
