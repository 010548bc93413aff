"""Sentence pairs (dataset/parallel.py) -> two separately tokenised sides, for sentence-embedding students.

Keys: input_ids / attention_mask / token_type_ids (source side, so latency and vocabulary checks see the
usual keys), tgt_input_ids / tgt_attention_mask / tgt_token_type_ids (target side), teacher_* (source side in
the teacher's vocabulary, only when it differs), labels (B, 2) = [group, score or nan], src_text_id /
tgt_text_id (rows of the teacher-embedding table) and index."""
import torch

from pretrained.loading import load_tokenizer
from pretrained.sources import same_vocab, student_tokenizer_source, teacher_tokenizer_source


class ParallelFormatter:
    reads_word_vocab = False  # token-level: the run's word vocabulary is not passed

    def __init__(self, config, mode):
        self.mode = mode
        self.max_length = config.get("data", "max_seq_length")
        self.tokenizer = load_tokenizer(student_tokenizer_source(config))
        source = teacher_tokenizer_source(config)
        teacher = load_tokenizer(source, "[distill] teacher") if source else None
        self.teacher_tokenizer = None if teacher is None or same_vocab(teacher, self.tokenizer) else teacher

    def encode(self, tokenizer, texts):
        return tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt")

    def __call__(self, examples):
        src = [ex["text_a"] for ex in examples]
        batch = dict(self.encode(self.tokenizer, src))
        batch.update({"tgt_" + k: v for k, v in self.encode(self.tokenizer, [ex["text_b"] for ex in examples]).items()})
        if self.teacher_tokenizer is not None:
            batch.update({"teacher_" + k: v for k, v in self.encode(self.teacher_tokenizer, src).items()})
        batch["labels"] = torch.tensor([ex["label"] for ex in examples], dtype=torch.float)
        batch["src_text_id"] = torch.tensor([ex["src_id"] for ex in examples], dtype=torch.long)
        batch["tgt_text_id"] = torch.tensor([ex["tgt_id"] for ex in examples], dtype=torch.long)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
