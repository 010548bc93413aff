"""word_lm: word_vocab batches for a word-level language model (ELMo's biLM, model/elmo_lm.py).

The same word ids and lengths as the word_vocab formatter (the run's vocabulary, `[word_vocab] max_length` words per
text), and `labels` = those word ids: a language model's targets are the text's own words (the model shifts them:
next words forward, previous words backward), so evaluation scores every split, labeled or not. Any reader works
(text_lines, wikitext, a task's TSV: its labels are replaced)."""
from formatter.word_vocab import WordVocabFormatter


class WordLMFormatter(WordVocabFormatter):
    def __call__(self, examples):
        batch = super().__call__(examples)
        batch["labels"] = batch["word_ids"]
        return batch
