"""Examples -> BERT-style masked-LM batches (Devlin et al. 2019) with dynamic padding.

Of each example's non-special tokens, round(n * mask_prob) (at least one) are predicted, as in BERT's
create_pretraining_data.py; of those, mask_replace_prob become [MASK], random_replace_prob a random
non-special token, and the rest stay. `labels` holds the original id at predicted positions and -100
elsewhere.

The choice is a pure function of (train seed, split, example index): each example gets its own
torch.Generator, never the global RNG. So a resumed run masks exactly as an uninterrupted one, DDP
ranks agree, an example's mask does not depend on which batch it lands in, and the validation masks
are the same at every evaluation. (The mask is static per example across epochs, like BERT's
pre-generated data with one duplicate, not RoBERTa's dynamic masking.)
"""
import torch

from pretrained.loading import load_tokenizer
from pretrained.sources import student_tokenizer_source
from utils.errors import ConfigError

SPLIT_SALT = {"train": 0, "valid": 1, "test": 2}
_M64 = (1 << 64) - 1


def example_seed(seed, split, index):
    """A well-mixed 64-bit seed (splitmix64) for one example: torch's CPU generator only keeps the low
    32 bits of a seed, so the train seed cannot just sit in the high bits."""
    x = (seed * 0x9E3779B97F4A7C15 + SPLIT_SALT.get(split, 3) * 0xD1B54A32D192ED03 + index) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class MLMFormatter:
    reads_word_vocab = False  # token-level: the run's word vocabulary is not passed

    def __init__(self, config, mode):
        self.mode = mode
        self.max_length = config.get("data", "max_seq_length")
        self.seed = config.get("train", "seed")
        self.mask_prob = config.get("mlm", "mask_prob")  # each in 0..1 (config/default.config); their sum here
        self.p_mask = config.get("mlm", "mask_replace_prob")
        self.p_random = config.get("mlm", "random_replace_prob")
        if self.p_mask + self.p_random > 1.0:
            raise ConfigError(f"[mlm] mask_replace_prob + random_replace_prob = {self.p_mask + self.p_random:g}: "
                              "must not exceed 1 (the rest of the predicted tokens is kept)")
        self.tokenizer = load_tokenizer(student_tokenizer_source(config))
        self.teacher_tokenizer = None  # MLM labels are student token ids: teacher and student share the vocabulary
        if self.tokenizer.mask_token_id is None:
            raise ConfigError(f"[model] tokenizer: {type(self.tokenizer).__name__} has no mask token; the mlm formatter needs one")
        special = set(self.tokenizer.all_special_ids)
        self.random_ids = torch.tensor([i for i in range(len(self.tokenizer)) if i not in special])

    def mask_row(self, ids, candidates, index):
        """Mask one example in place: ids (L,) token ids, candidates (L,) bool. Returns labels (L,)."""
        labels = torch.full_like(ids, -100)
        positions = candidates.nonzero().flatten()
        n = len(positions)
        k = max(1, int(n * self.mask_prob + 0.5)) if n and self.mask_prob > 0 else 0
        if k == 0:
            return labels
        gen = torch.Generator().manual_seed(example_seed(self.seed, self.mode, index))
        chosen = positions[torch.randperm(n, generator=gen)[:k]]
        how = torch.rand(k, generator=gen)
        random_tokens = self.random_ids[torch.randint(len(self.random_ids), (k,), generator=gen)]
        labels[chosen] = ids[chosen]
        new = torch.where(how < self.p_mask, torch.full_like(random_tokens, self.tokenizer.mask_token_id),
                          torch.where(how < self.p_mask + self.p_random, random_tokens, ids[chosen]))
        ids[chosen] = new
        return labels

    def __call__(self, examples):
        a = [ex["text_a"] for ex in examples]
        b = [ex["text_b"] for ex in examples] if examples[0]["text_b"] is not None else None
        batch = dict(self.tokenizer(a, b, padding="longest", truncation=True, max_length=self.max_length,
                                    return_tensors="pt", return_special_tokens_mask=True))
        special = batch.pop("special_tokens_mask").bool()
        candidates = ~special & batch["attention_mask"].bool()
        ids = batch["input_ids"].clone()
        batch["labels"] = torch.stack([self.mask_row(ids[i], candidates[i], ex["index"]) for i, ex in enumerate(examples)])
        batch["input_ids"] = ids
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
