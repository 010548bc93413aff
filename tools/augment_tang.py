"""Tang et al. 2019 transfer-set augmentation (Distilled-BiLSTM, section 3.3), used by
`tools/augment.py --method tang`.

For each word, draw x ~ U[0, 1): x < p_mask replaces it with "[MASK]" (the teacher's mask token, the
student's <unk>). Then, with probability p_ng, keep only a random n-gram of the result, n uniform in
1..max_ngram (the whole text when it is shorter). The paper's third rule, POS-guided swapping
(p_pos: replace a word with another of the same part of speech), needs a POS tagger that is not
available offline here, so it is omitted: words it would have swapped stay as they are.
The paper draws n_iter samples per training example (20 for SST-2) and keeps the distinct ones;
the teacher labels them during training, so inherited labels only matter to hard_weight > 0.
Texts are split on whitespace (GLUE text is already tokenised) and joined with single spaces;
for a sentence pair, augment each text on its own.
"""


def tang_augment(sentence, rng, p_mask=0.1, p_ng=0.25, max_ngram=5, mask_token="[MASK]"):
    """One synthetic text from `sentence`; `rng` is a random.Random (only .random and .randint are used)."""
    if not 0.0 <= p_mask <= 1.0 or not 0.0 <= p_ng <= 1.0 or max_ngram < 1:
        raise ValueError(f"tang_augment: p_mask={p_mask}, p_ng={p_ng} must be probabilities and max_ngram={max_ngram} >= 1")
    words = [mask_token if rng.random() < p_mask else w for w in sentence.split()]
    if words and rng.random() < p_ng:
        n = rng.randint(1, max_ngram)
        if n < len(words):
            start = rng.randint(0, len(words) - n)
            words = words[start: start + n]
    return " ".join(words)


def tang_augment_many(sentence, rng, n_iter=20, **kwargs):
    """Up to n_iter distinct synthetic texts (the original and repeats dropped), in the order drawn."""
    seen, out = {" ".join(sentence.split())}, []
    for _ in range(n_iter):
        text = tang_augment(sentence, rng, **kwargs)
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out
