"""Text pairs -> fixed-length bipartition batches for text matching (VIRT, Li et al. 2022).

Each text gets a fixed-length tower sequence with its padding BEFORE the final [SEP]:
    query tower  (length Lq): [CLS] a... [PAD]... [SEP]
    doc tower    (length Ld): [CLS] b... [PAD]... [SEP]
and the cross-encoder teacher reads the query tower followed by the doc tower without its [CLS]
(length Lq + Ld - 1): [CLS] a... [PAD]... [SEP] b... [PAD]... [SEP].
So teacher position p < Lq is query-tower position p and teacher position Lq + j is doc-tower position
j + 1: the two-tower student and the teacher see every token at the same place, which is what lets VIRT
compare their attention maps token by token. Lengths are fixed (not per batch) so positions, and hence
outputs, never depend on which examples share a batch. PAD positions have attention mask 0, [CLS] and
both [SEP]s mask 1 (mean pooling covers them).

Batch keys: input_ids / attention_mask / token_type_ids (the teacher's joint layout), a_input_ids /
a_attention_mask (query tower), b_input_ids / b_attention_mask (doc tower), labels, index.
"""
import torch

from formatter.labels import add_labels
from pretrained.loading import load_tokenizer
from pretrained.sources import student_tokenizer_source
from utils.errors import ConfigError, DataError
from utils.tower_lengths import tower_lengths


class BipartitionFormatter:
    reads_word_vocab = False  # token-level: the run's word vocabulary is not passed

    def __init__(self, config, mode):
        self.mode = mode
        self.tokenizer = load_tokenizer(student_tokenizer_source(config))
        self.teacher_tokenizer = None  # teacher and towers share one vocabulary (positions are compared one to one)
        self.query_length, self.doc_length = tower_lengths(config)
        self.swap = config.get("match", "swap_pair")
        tok = self.tokenizer
        if tok.cls_token_id is None or tok.sep_token_id is None or tok.pad_token_id is None:
            raise ConfigError("[data] formatter_type = bipartition: the tokenizer needs [CLS], [SEP] and [PAD] tokens")

    def tower(self, texts, length):
        """(input_ids, attention_mask) (N, length): [CLS] text [PAD]... [SEP], text cut to length - 2 tokens."""
        tok = self.tokenizer
        pieces = tok(list(texts), add_special_tokens=False, truncation=True, max_length=length - 2)["input_ids"]
        ids = torch.full((len(pieces), length), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(pieces), length), dtype=torch.long)
        for row, piece in enumerate(pieces):
            ids[row, 0], ids[row, 1:1 + len(piece)], ids[row, -1] = tok.cls_token_id, torch.tensor(piece, dtype=torch.long), tok.sep_token_id
            mask[row, :1 + len(piece)] = 1
            mask[row, -1] = 1
        return ids, mask

    def sides(self, example):
        """(query text, doc text) of one example."""
        if example["text_b"] is None:
            raise DataError(f"{example.get('guid', 'example')}: bipartition matching needs text pairs; this example has one text "
                            "(set [data] text_b_field, or use a pair task)")
        return (example["text_b"], example["text_a"]) if self.swap else (example["text_a"], example["text_b"])

    def encode_docs(self, texts):
        """Doc-tower inputs for a list of document texts (the two-tower document cache)."""
        ids, mask = self.tower(texts, self.doc_length)
        return {"b_input_ids": ids, "b_attention_mask": mask}

    def __call__(self, examples):
        queries, docs = zip(*(self.sides(ex) for ex in examples))
        a_ids, a_mask = self.tower(queries, self.query_length)
        b_ids, b_mask = self.tower(docs, self.doc_length)
        types = torch.cat([torch.zeros_like(a_ids), torch.ones_like(b_ids[:, 1:])], dim=1)
        batch = {"input_ids": torch.cat([a_ids, b_ids[:, 1:]], dim=1),
                 "attention_mask": torch.cat([a_mask, b_mask[:, 1:]], dim=1), "token_type_ids": types,
                 "a_input_ids": a_ids, "a_attention_mask": a_mask, "b_input_ids": b_ids, "b_attention_mask": b_mask}
        add_labels(batch, examples)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
