"""Stage 3 of Ding et al. 2022, parameter recurrence: keep `layers_to_keep` layers and run them `repeat` times
(ALBERT-style sharing), then recover what was cut by MSE to the teacher's sentence embedding of each side
(each sentence regresses on the teacher's embedding of that same sentence, as in the authors' stage 3).
rec_distill keeps the full embedding; rec_bottle_distill starts from stage 2's bottleneck student."""
from model.parts.sentence_embedding import SentenceDistill


class RecDistill(SentenceDistill):
    recurrent = True
    target = "same"


class RecBottleDistill(RecDistill):
    bottleneck = True
