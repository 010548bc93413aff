"""ltd: word-id batches for the LTD student (model/ltd.py): each text cut by the [ltd] segmenter into words
(formatter/segmenters.py), read through the run's IdfVocab (formatter/idf_vocab.py, built once by init/ltd_vocab.py).

Keys: `word_ids` (B, L) padded with <pad> = 0 to the longest text of the batch (at least one column; an empty text
has length 0 and embeds to the zero vector), `word_lengths` (B,); for rows with two texts, `b_word_ids` /
`b_word_lengths` of the second, each text on its own; no text is cut (the exported StaticEmbedding model cuts none).
With a teacher ([distill] teacher), its own inputs as teacher_*: GLUE-style rows give it the pair as one sequence
(a cross-encoder classifier); parallel rows (dataset/parallel.py) give it the first text alone (a sentence encoder),
together with labels (B, 2) = [group, score or nan] and the rows of the teacher-embedding table, src_text_id /
tgt_text_id, as formatter/parallel.py does."""
import torch

from formatter.labels import add_labels
from formatter.segmenters import make_segmenter
from pretrained.loading import load_tokenizer
from pretrained.sources import teacher_tokenizer_source
from utils.errors import DataError


class LtdFormatter:
    reads_word_vocab = True  # init builds the run's IdfVocab once and passes it here and to the student

    def __init__(self, config, mode, word_vocab):
        self.mode = mode
        self.tokenizer = word_vocab
        teacher = teacher_tokenizer_source(config)
        self.teacher_tokenizer = load_tokenizer(teacher, "[distill] teacher") if teacher else None
        self.segment = make_segmenter(config, self.teacher_tokenizer)
        self.teacher_max_length = config.get("data", "max_seq_length")

    def padded(self, texts):
        """(ids (B, L) padded with <pad>, lengths (B,)) of one text per row."""
        encoded = [self.tokenizer.ids(words) for words in self.segment.many(texts)]
        lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
        word_ids = torch.full((len(encoded), max(1, int(lengths.max()))), self.tokenizer.pad_id, dtype=torch.long)
        for row, ids in enumerate(encoded):
            word_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return word_ids, lengths

    def check_layout(self, example):
        if (example["text_b"] is not None) != self.tokenizer.pairs:
            has, wants = ("one text", "two texts per row") if self.tokenizer.pairs else ("two texts", "one text per row")
            raise DataError(f"{example.get('guid', 'example ' + str(example.get('index')))}: has {has}, but this run's "
                            f"LTD student reads {wants} (as its training split does)")

    def teacher_inputs(self, examples, sentences):
        a = [ex["text_a"] for ex in examples]
        b = None if sentences or examples[0]["text_b"] is None else [ex["text_b"] for ex in examples]
        enc = self.teacher_tokenizer(a, b, padding="longest", truncation=True, max_length=self.teacher_max_length,
                                     return_tensors="pt")
        return {"teacher_" + k: v for k, v in enc.items()}

    def __call__(self, examples):
        for ex in examples:
            self.check_layout(ex)
        word_ids, lengths = self.padded([ex["text_a"] for ex in examples])
        batch = {"word_ids": word_ids, "word_lengths": lengths}
        if self.tokenizer.pairs:
            batch["b_word_ids"], batch["b_word_lengths"] = self.padded([ex["text_b"] for ex in examples])
        sentences = "src_id" in examples[0]  # parallel rows: each sentence is embedded on its own
        if self.teacher_tokenizer is not None:
            batch.update(self.teacher_inputs(examples, sentences))
        if sentences:
            batch["labels"] = torch.tensor([ex["label"] for ex in examples], dtype=torch.float)
            batch["src_text_id"] = torch.tensor([ex["src_id"] for ex in examples], dtype=torch.long)
            batch["tgt_text_id"] = torch.tensor([ex["tgt_id"] for ex in examples], dtype=torch.long)
        else:
            add_labels(batch, examples)
        batch["index"] = torch.tensor([ex["index"] for ex in examples], dtype=torch.long)
        return batch
