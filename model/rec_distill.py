"""Stage 3 of Ding et al. 2022, parameter recurrence: keep the source's first `layers_to_keep` layers and run them
`repeat` times, then recover what was cut by MSE to the teacher's sentence embedding of each side (each sentence
regresses on the teacher's embedding of that same sentence). rec_distill keeps the source's own embedding layer;
rec_bottle_distill starts from stage 2's export (the factorised word table, model/parts/recurrent_encoder.py) with
the layers stage 2 carried along.

Followed: the authors' code, github.com/KB-Ding/Multi-stage-Distillaton-Framework: model/distillation/
rec_distill.py and rec_bottle_distill.py (student, lines 25-47 of the latter: the kept layers on stage 2's
`Small_Embeddings`; `layers_forward`, lines 77-102: [kept layers] x repeat; loss, lines 189-210: nn.MSELoss per
side, summed). Every parameter trains, embeddings included, as theirs."""
from model.parts.sentence_embedding import SentenceDistill


class RecDistill(SentenceDistill):
    paper = "Ding et al. 2022, Multi-stage Distillation Framework for Cross-Lingual Semantic Similarity Matching"
    recurrent = True
    target = "same"


class RecBottleDistill(RecDistill):
    bottleneck = True
