"""How much of a test text's vocabulary a training text has seen: the share of the test file's word tokens and
word types (lower-cased \\w+ runs) that occur anywhere in the training file. Says whether a test set is in the
training data's domain (e.g. Tatoeba against Multi30k captions).

  python experiments/vocab_coverage.py ../shared/data/multi30k/train.de ../shared/data/tatoeba/tatoeba.deu-eng.deu
"""
import argparse
import re

WORD = re.compile(r"\w+")


def words(path):
    with open(path, encoding="utf-8") as handle:
        return [w for line in handle for w in WORD.findall(line.lower())]


def coverage(train_words, test_words):
    """(token share, type share) of test_words found in train_words, in percent."""
    seen, types = set(train_words), set(test_words)
    tokens = 100 * sum(w in seen for w in test_words) / max(1, len(test_words))
    return tokens, 100 * len(types & seen) / max(1, len(types))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("test", nargs="+")
    args = parser.parse_args()
    train = words(args.train)
    for test in args.test:
        tokens, types = coverage(train, words(test))
        print(f"{test}: {tokens:.1f}% of word tokens, {types:.1f}% of word types occur in {args.train}")


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
