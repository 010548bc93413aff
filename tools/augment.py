"""TinyBERT data augmentation (Jiao et al. 2020, Algorithm 1) for a GLUE training TSV.

  python tools/augment.py --task SST-2 --input ../shared/data/glue/SST-2/train.tsv \
      --mlm runs/general/mlm_head --output runs/aug/SST-2/train_aug.tsv

For every training text, N_a (--n_aug) copies are drawn: each eligible word is replaced with
probability p_t (--p_t) by a candidate drawn uniformly from its K (--top_k) candidates:
- a word that is one word piece is masked and the masked LM (--mlm, any HF *ForMaskedLM) predicts
  the K most likely whole words at that position (the original word, "##" pieces and special tokens
  left out);
- a word of several pieces gets its K nearest whole words by cosine similarity in a word-vector space
  standing in for the paper's GloVe (--space): `encoder` (default) encodes each word alone through the
  encoder of --embeddings (default: the MLM's own, i.e. the teacher's) and averages the last-layer states
  of its pieces; `input` averages its pieces' input embeddings. The input-embedding average of a rare
  word is close to its first piece ("distorting" -> "di"); the encoder's vectors give its meaning
  ("distorted", "warped"). --single_piece neighbours draws every word's candidates this way (no MLM
  predictions), for an MLM too weak to propose sensible words.
Candidates (MLM predictions and neighbours alike) are whole words of the vocabulary (alphabetic, 2+
letters) that are not stop words: only content words are replaced, and a content word replaced by "of"
or "by" makes a copy no sentence. Candidates are computed once per word in its original sentence (all
masked variants of a sentence go through the MLM in one batch), then the copies are sampled. As in the
released TinyBERT code, only alphabetic words that are not stop words are eligible, and copies equal to
the original or to an earlier copy are dropped (so a short text may get fewer than N_a). A replacement keeps the word's
capitalisation (Title, UPPER); the rest of the text is left byte for byte.

Sentence pairs: the released code augments each text column in turn (MRPC, RTE: both sentences);
here too (--columns both), each copy changing one text and keeping the other as it is (the released
code left the first text at its last augmented variant while augmenting the second: not reproduced).
--columns a augments the first text only.

Output: the input's header (if any) and columns, augmented rows only (the originals stay in the
training file; [data] use_aug appends these after them), labels copied from the source row; written to
a temp file and renamed. Deterministic for a given --seed: each text draws from its own generator
seeded by (seed, line, column). --method tang draws Tang et al. 2019 copies instead
(tools/augment_tang.py; no MLM needed). Bad input: one line naming the file (and line), exit code 2.
"""
import argparse
import json
import os
import random
import re
import tempfile
from pathlib import Path

from process.cli import main_guard
from utils.errors import ConfigError, DataError

# NLTK's English stop words (the list the released TinyBERT code skips), plus the "'s" / "'re" pieces
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his himself
she she's her hers herself it it's its itself they them their theirs themselves what which who whom this that that'll
these those am is are was were be been being have has had having do does did doing a an the and but if or because as
until while of at by for with about against between into through during before after above below to from up down in
out on off over under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've now d ll m o re ve
y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn
mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
's 're""".split())
SPACES = ("encoder", "input")  # --space: where multi-piece words' neighbours are found
WORD = re.compile(r"\w+|[^\w\s]")  # word pieces of text as BERT's basic tokenizer splits them (alnum runs, punctuation)


def words_of(text):
    """[(start, end, word)] of the text, in order."""
    return [(m.start(), m.end(), m.group()) for m in WORD.finditer(text)]


def eligible(word):
    return word.isascii() and word.isalpha() and word.lower() not in STOP_WORDS


def match_case(candidate, word):
    if len(word) > 1 and word.isupper():
        return candidate.upper()
    return candidate.title() if word.istitle() else candidate


# ---------------------------------------------------------------- reading and writing GLUE TSVs
def read_rows(path, task, max_examples=0, heldout_every=0):
    """(header line or None, [(lineno, fields, label)], text column indices) of a labelled GLUE TSV.
    The file is validated by the project's reader first, so malformed rows fail as file:line. heldout_every > 0:
    only the training part of the file (dataset/heldout.py's rule, as [data] heldout_every reads it), then the cap."""
    from dataset.glue_tsv import read_glue_tsv, task_spec
    from dataset.heldout import split_rows
    from dataset.text_lines import iter_lines
    spec = task_spec(task)
    examples = read_glue_tsv(path, task, max_examples=0 if heldout_every else max_examples)
    if examples[0]["label"] is None:
        raise DataError(f"{path}: no '{spec.label}' column; augment a labelled training file")
    header, rows = None, []
    lines = ((n, line) for n, line in iter_lines(path) if line != "")
    for lineno, line in lines:  # the same non-empty lines, in the same order, read_glue_tsv used
        fields = line.split("\t")
        if header is None and not rows and (spec.header or (fields[0] == "index" and spec.text_a in fields)):
            header = line
            columns = (fields.index(spec.text_a),) + ((fields.index(spec.text_b),) if spec.text_b else ())
            continue
        if not rows and header is None:
            columns = tuple(c for c in spec.columns[:2] if c is not None)
        rows.append((lineno, fields))
        if len(rows) == len(examples):
            break
    if heldout_every:
        rows = split_rows(rows, heldout_every, "train")
        rows = rows[:max_examples] if max_examples else rows
    return header, rows, columns


def write_atomic(path, lines):
    """Write all lines to a temp file beside `path`, then rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise ConfigError(f"--output {path}: cannot write ({err.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for line in lines:
                handle.write(line + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- candidates (MLM and embeddings)
class Candidates:
    """Top-K replacement words per (text, word position): masked-LM predictions for single-piece words,
    embedding neighbours for multi-piece ones."""

    def __init__(self, mlm_path, embeddings_path=None, top_k=15, batch_size=32, device="cpu", space="encoder",
                 single_piece="mlm"):
        import torch
        from pretrained.loading import load_encoder, load_masked_lm, load_tokenizer, resolve_model_path
        from model.parts.masked_lm import mlm_parts
        if space not in SPACES:
            raise ConfigError(f"--space {space}: expected one of {', '.join(SPACES)}")
        self.torch, self.top_k, self.batch_size, self.device = torch, top_k, batch_size, device
        self.space, self.single_piece = space, single_piece
        path = resolve_model_path(mlm_path, "--mlm")
        self.tokenizer = load_tokenizer(path, "--mlm")
        self.model = load_masked_lm(path, "--mlm", require_head=True).to(device).eval()
        if self.tokenizer.mask_token_id is None:
            raise ConfigError(f"--mlm {mlm_path}: its tokenizer has no mask token")
        self.encoder = mlm_parts(self.model)[0]
        if embeddings_path:
            other = resolve_model_path(embeddings_path, "--embeddings")
            if load_tokenizer(other, "--embeddings").get_vocab() != self.tokenizer.get_vocab():
                raise ConfigError(f"--embeddings {embeddings_path}: its vocabulary differs from the MLM's ({mlm_path})")
            self.encoder = load_encoder(other, "--embeddings").to(device).eval()
        self.table = self.encoder.get_input_embeddings().weight.detach().float().cpu()
        vocab = self.tokenizer.get_vocab()
        special = set(self.tokenizer.all_special_tokens)
        # whole content words (alphabetic, 2+ letters, no stop word, "##" piece or special token): what either
        # source may propose
        self.whole = torch.zeros(self.table.shape[0], dtype=torch.bool)
        for token, idx in vocab.items():
            if (token not in special and token.isascii() and token.isalpha() and len(token) > 1
                    and token.lower() not in STOP_WORDS and idx < len(self.whole)):
                self.whole[idx] = True
        self.pool_ids = self.whole.nonzero()[:, 0]
        self.id_to_token = {i: t for t, i in vocab.items()}
        self._pool_norm = None  # the pool's word vectors, computed on first use (the encoder space: a pass over ~20k words)

    def pieces(self, word):
        return self.tokenizer.tokenize(word)

    def word_vectors(self, piece_lists):
        """(N, H) vectors of words given as piece lists, in the chosen --space."""
        torch = self.torch
        if self.space == "input":
            return torch.stack([self.table[self.tokenizer.convert_tokens_to_ids(p)].mean(0) for p in piece_lists])
        tok, out = self.tokenizer, []
        for start in range(0, len(piece_lists), 256):  # each word alone: [CLS] pieces [SEP]
            rows = [[tok.cls_token_id] + tok.convert_tokens_to_ids(p) + [tok.sep_token_id]
                    for p in piece_lists[start:start + 256]]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows], device=self.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
            pieces = torch.tensor([[0] + [1] * (len(r) - 2) + [0] * (width - len(r) + 1) for r in rows],
                                  device=self.device, dtype=torch.float32)
            with torch.inference_mode():
                states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            out.append(((states * pieces[..., None]).sum(1) / pieces.sum(1, keepdim=True)).cpu())
        return torch.cat(out)

    def pool_norm(self):
        if self._pool_norm is None:
            words = [[self.id_to_token[i]] for i in self.pool_ids.tolist()]
            self._pool_norm = self.torch.nn.functional.normalize(self.word_vectors(words), dim=-1)
        return self._pool_norm

    def neighbours(self, words):
        """{word: [K nearest whole content words of the vocabulary]} by cosine similarity of word vectors in the
        chosen --space (the word itself left out, in any case)."""
        torch = self.torch
        words = sorted(set(words))
        result = {}
        for start in range(0, len(words), 256):
            chunk = words[start:start + 256]
            query = torch.nn.functional.normalize(self.word_vectors([self.pieces(w) for w in chunk]), dim=-1)
            sims = query @ self.pool_norm().T
            top = sims.topk(min(self.top_k + 1, sims.shape[1]), dim=-1).indices
            for row, word in enumerate(chunk):
                found = [self.id_to_token[i] for i in self.pool_ids[top[row]].tolist()]
                result[word] = [w for w in found if w.lower() != word.lower()][:self.top_k]
        return result

    def batches(self, requests):
        """Consecutive slices of `requests` of at most batch_size, a text's masked variants kept in one slice
        (split only when one text alone has more)."""
        first = 0
        while first < len(requests):
            end = min(first + self.batch_size, len(requests))
            if end < len(requests) and requests[end][0] is requests[end - 1][0]:
                start_of_text = end - 1
                while start_of_text > first and requests[start_of_text - 1][0] is requests[end][0]:
                    start_of_text -= 1
                end = start_of_text if start_of_text > first else end
            yield requests[first:end]
            first = end

    def masked(self, requests):
        """[(text, start, end, word)] -> [[K whole words the MLM predicts at the masked span]], batched."""
        torch = self.torch
        from model.parts.masked_lm import encode, head_logits
        out = []
        limit = min(512, getattr(self.tokenizer, "model_max_length", 512) or 512)
        for chunk in self.batches(requests):
            texts = [text[:s] + self.tokenizer.mask_token + text[e:] for text, s, e, _ in chunk]
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
            enc = enc.to(self.device)
            positions = enc["input_ids"] == self.tokenizer.mask_token_id
            keep = positions.sum(1) == 1  # truncated away (or a literal mask token in the text): no candidates
            positions &= keep[:, None]
            with torch.no_grad():  # not inference_mode: the logits are edited in place below
                logits = head_logits(self.model, encode(self.model, dict(enc)), positions).float().cpu()
            logits[:, ~self.whole[:logits.shape[1]]] = float("-inf")
            rows = iter(range(logits.shape[0]))
            for (_, _, _, word), ok in zip(chunk, keep.tolist()):
                if not ok:
                    out.append([])
                    continue
                row = logits[next(rows)]
                own = self.tokenizer.convert_tokens_to_ids(self.pieces(word))
                row[own] = float("-inf")  # never the word itself
                top = row.topk(min(self.top_k, row.numel()))
                pairs = zip(top.indices.tolist(), top.values.tolist())
                out.append([self.id_to_token[i] for i, v in pairs if v > float("-inf")])
        return out


# ---------------------------------------------------------------- Algorithm 1
def tinybert_copies(text, candidates, n_aug, p_t, rng):
    """Up to n_aug distinct copies of `text`: each eligible word with candidates is replaced with probability
    p_t by one of them, drawn uniformly. `candidates` maps word position -> list of words."""
    spans = words_of(text)
    seen, out = {text}, []
    for _ in range(n_aug):
        pieces, last = [], 0
        for pos, (start, end, word) in enumerate(spans):
            options = candidates.get(pos)
            if options and rng.random() < p_t:
                pieces += [text[last:start], match_case(rng.choice(options), word)]
                last = end
        new = "".join(pieces) + text[last:]
        if new not in seen:
            seen.add(new)
            out.append(new)
    return out


def tinybert_candidates(texts, source, unk_token):
    """[{word position: candidate words}] for each text (one MLM pass over all masked variants, in order)."""
    plan, requests, multi = [], [], []
    for text in texts:
        entry = {}
        for pos, (start, end, word) in enumerate(words_of(text)):
            if not eligible(word):
                continue
            pieces = source.pieces(word)
            if len(pieces) == 1 and pieces[0] != unk_token and source.single_piece == "mlm":
                entry[pos] = ("mlm", len(requests))
                requests.append((text, start, end, word))
            elif unk_token not in pieces:
                entry[pos] = ("emb", word)
                multi.append(word)
        plan.append(entry)
    predicted = source.masked(requests)
    near = source.neighbours(multi)
    return [{pos: (predicted[ref] if kind == "mlm" else near[ref]) for pos, (kind, ref) in entry.items()} for entry in plan]


def text_rng(seed, lineno, column):
    return random.Random(f"{seed}:{lineno}:{column}")


def augment_rows(rows, columns, copies_of, group=64, progress=None):
    """Output rows: for each source row and text column, its copies with that column replaced.
    copies_of(texts, keys) -> [[copy, ...]] per text; rows are processed in groups of `group`."""
    out = []
    for first in range(0, len(rows), group):
        if progress and first and first % (group * 16) == 0:
            progress(f"{first}/{len(rows)} rows, {len(out)} augmented rows so far")
        chunk = rows[first:first + group]
        jobs = [(lineno, fields, col) for lineno, fields in chunk for col in columns]
        copies = copies_of([fields[col] for _, fields, col in jobs], [(lineno, col) for lineno, _, col in jobs])
        for (lineno, fields, col), texts in zip(jobs, copies):
            for text in texts:
                new = list(fields)
                new[col] = text
                out.append("\t".join(new))
    return out


def check_args(args):
    if args.n_aug < 1:
        raise ConfigError(f"--n_aug {args.n_aug}: must be >= 1")
    if not 0.0 <= args.p_t <= 1.0:
        raise ConfigError(f"--p_t {args.p_t}: must be a probability in [0, 1]")
    if args.top_k < 1:
        raise ConfigError(f"--top_k {args.top_k}: must be >= 1")
    if args.batch_size < 1:
        raise ConfigError(f"--batch_size {args.batch_size}: must be >= 1")
    if args.max_examples < 0:
        raise ConfigError(f"--max_examples {args.max_examples}: must be >= 0")
    if args.heldout_every < 0 or args.heldout_every == 1:
        raise ConfigError(f"--heldout_every {args.heldout_every}: must be 0 (the whole file) or >= 2")
    if args.method == "tinybert" and not args.mlm:
        raise ConfigError("--mlm: required for --method tinybert "
                          "(an HF *ForMaskedLM checkpoint, e.g. runs/general/mlm_head)")


def make_copier(args):
    """copies_of(texts, keys) for the chosen method."""
    if args.method == "tang":
        try:
            from tools.augment_tang import tang_augment_many
        except ImportError as err:
            raise ConfigError(f"--method tang: tools/augment_tang.py is not available ({err})") from None
        return lambda texts, keys: [tang_augment_many(t, text_rng(args.seed, *k), n_iter=args.n_aug)
                                    for t, k in zip(texts, keys)]
    device = "cpu"
    if args.gpu is not None:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"--gpu {args.gpu}: CUDA is not available on this machine; omit --gpu to run on CPU")
        device = f"cuda:{args.gpu}"
    source = Candidates(args.mlm, args.embeddings, args.top_k, args.batch_size, device, args.space, args.single_piece)
    unk = source.tokenizer.unk_token

    def copies_of(texts, keys):
        found = tinybert_candidates(texts, source, unk)
        return [tinybert_copies(t, c, args.n_aug, args.p_t, text_rng(args.seed, *k)) for t, c, k in zip(texts, found, keys)]
    return copies_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="TinyBERT (or Tang et al.) data augmentation of a GLUE training TSV.")
    parser.add_argument("--task", required=True, help="GLUE task name (SST-2, MRPC, RTE, ...): columns and labels")
    parser.add_argument("--input", required=True, help="the training TSV to augment")
    parser.add_argument("--output", help="augmented TSV to write (default: runs/aug/<TASK>/train_aug.tsv)")
    parser.add_argument("--method", choices=("tinybert", "tang"), default="tinybert")
    parser.add_argument("--mlm", help="HF *ForMaskedLM checkpoint (name, path or run directory) proposing words")
    parser.add_argument("--embeddings", help="model whose encoder (or input embeddings, --space input) gives "
                                             "multi-piece words' neighbours (default: the MLM's)")
    parser.add_argument("--space", choices=SPACES, default="encoder",
                        help="neighbours by the encoder's vectors of each word alone, or by mean input embeddings")
    parser.add_argument("--single_piece", choices=("mlm", "neighbours"), default="mlm",
                        help="single-piece words' candidates: the MLM's predictions (the paper) or neighbours too")
    parser.add_argument("--n_aug", type=int, default=20, help="copies drawn per text (N_a)")
    parser.add_argument("--p_t", type=float, default=0.4, help="probability of replacing an eligible word")
    parser.add_argument("--top_k", type=int, default=15, help="candidates per word (K)")
    parser.add_argument("--columns", choices=("both", "a"), default="both",
                        help="pair tasks: augment both texts (each in turn) or the first only")
    parser.add_argument("--max_examples", type=int, default=0, help="augment only the first N rows (0 = all)")
    parser.add_argument("--heldout_every", type=int, default=0,
                        help="the task's [data] heldout_every: augment only the rows it trains on, never the held-out "
                             "dev rows (recorded beside --output in OUTPUT.json; the dataset checks it)")
    parser.add_argument("--batch_size", type=int, default=64, help="masked variants per MLM forward pass")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--gpu", type=int, default=None, help="CUDA device for the MLM; omit for CPU")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    from dataset.glue_tsv import aug_record_path, task_spec
    task_spec(args.task)  # unknown task names fail here, listing the known ones
    header, rows, columns = read_rows(args.input, args.task, args.max_examples, args.heldout_every)
    if args.columns == "a":
        columns = columns[:1]
    output = args.output or str(Path("runs") / "aug" / args.task / "train_aug.tsv")
    lines = augment_rows(rows, columns, make_copier(args), progress=lambda msg: print(f"augment: {msg}", flush=True))
    write_atomic(output, ([header] if header is not None else []) + lines)
    made = {"input": str(args.input), "task": args.task, "heldout_every": args.heldout_every,
            "max_examples": args.max_examples, "method": args.method, "n_aug": args.n_aug, "seed": args.seed}
    write_atomic(aug_record_path(output), [json.dumps(made, indent=1)])  # the dataset checks heldout_every there
    print(f"{output}: {len(lines)} augmented rows from {len(rows)} rows of {args.input}")
    return output


if __name__ == "__main__":
    main_guard(main)
