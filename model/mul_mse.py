"""mul_mse: Reimers & Gurevych 2020, Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation. The student embeds an English sentence and its translation; both regress (MSE) onto the teacher's
embedding of the English sentence."""
from model.parts.sentence_embedding import SentenceDistill


class MulMSE(SentenceDistill):
    paper = "Reimers & Gurevych 2020, Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation"
    target = "english"
