"""Examples -> padded batch tensors with an HF tokenizer; padding is per batch (dynamic).

When teacher and student tokenizers differ (different vocabularies), the batch also carries
teacher_input_ids / teacher_attention_mask / teacher_token_type_ids.
"""
import torch

from formatter.labels import add_labels
from pretrained.loading import load_tokenizer
from pretrained.sources import same_vocab, student_tokenizer_source, teacher_tokenizer_source


class HFTokenizerFormatter:
    reads_word_vocab = False  # token-level: the run's word vocabulary is not passed

    def __init__(self, config, mode):
        self.mode = mode
        self.max_length = config.get("data", "max_seq_length")
        self.tokenizer = load_tokenizer(student_tokenizer_source(config))
        teacher_src = teacher_tokenizer_source(config)
        teacher_tok = load_tokenizer(teacher_src, "[distill] teacher") if teacher_src and mode == "train" else None
        self.teacher_tokenizer = None if teacher_tok is None or same_vocab(teacher_tok, self.tokenizer) else teacher_tok

    def encode(self, tokenizer, examples):
        a = [ex["text_a"] for ex in examples]
        b = [ex["text_b"] for ex in examples] if examples[0]["text_b"] is not None else None
        return tokenizer(a, b, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt")

    def __call__(self, examples):
        batch = dict(self.encode(self.tokenizer, examples))
        if self.teacher_tokenizer is not None:
            batch.update({"teacher_" + k: v for k, v in self.encode(self.teacher_tokenizer, examples).items()})
        add_labels(batch, examples)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
