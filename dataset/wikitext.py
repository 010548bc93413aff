"""wikitext: WikiText-2 / -103 token files (Merity et al. 2016; wiki.{train,valid,test}.tokens, as in
../shared/data/wikitext2/) as unlabeled sentences, one example each, for language-model stages (elmo_lm).

The files hold one paragraph per line between blank lines and ` = Heading = ` lines. Here headings and blank lines
are dropped, the tokeniser's joins are undone (` @-@ ` -> `-`, ` @,@ ` -> `,`, ` @.@ ` -> `.`), each paragraph is split
into sentences with the rule ../shared/data/wiki_sentences was cut with (after `.`, `!` or `?`, before a capital or
a digit, optionally after an opening quote or bracket), so a model trained on those sentences is scored on
sentences too, and WikiText's own `<unk>` becomes `[MASK]`: the word vocabulary's mask word, which it reads as <unk>
(formatter/word_vocab.py), so an unknown word stays one unknown word."""
import re
from pathlib import Path

from dataset.text_lines import ExamplesDataset, check_not_empty, iter_lines, train_limit
from utils.paths import data_file

HEADING = re.compile(r"^=( =)* .* =( =)*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“(']?[A-Z0-9])")
JOINS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
UNKNOWN, MASK = "<unk>", "[MASK]"


def wikitext_sentences(line):
    """The sentences of one line of a WikiText token file ([] for a heading or a blank line)."""
    text = line.strip()
    if not text or HEADING.match(text):
        return []
    for joined, plain in JOINS:
        text = text.replace(joined, plain)
    text = text.replace(UNKNOWN, MASK)
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def read_wikitext(path, max_examples=0):
    examples = []
    for lineno, line in iter_lines(path):
        for i, sentence in enumerate(wikitext_sentences(line)):
            if max_examples > 0 and len(examples) >= max_examples:
                return check_not_empty(examples, path)
            examples.append({"guid": f"{Path(path).stem}-{lineno}-{i}", "text_a": sentence, "text_b": None, "label": None})
    return check_not_empty(examples, path)


class WikiTextDataset(ExamplesDataset):
    """Unlabeled WikiText sentences (language-model training or evaluation)."""

    def __init__(self, config, mode):
        self.mode = mode
        self.path = data_file(config, mode)
        self.examples = read_wikitext(self.path, train_limit(config, mode))
