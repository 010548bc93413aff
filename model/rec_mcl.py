"""Stage 4 of Ding et al. 2022: multilingual distillation of the compressed student (stage 3's export, loaded as it
is: model/parts/recurrent_student.py from_export; the authors' model/multilingual/rec_bottle_mcl.py lines 30-49
rebuild the same student and load stage 3's checkpoint into it): both sides
regress on the teacher's English embedding (MSE, as mul_mse) plus an in-batch cross-lingual term:
- rec_bottle_mcl / rec_mcl: multilingual contrastive learning as the authors' code defines it
  (model/parts/loss.py mcl_loss: the student's cos(source_i, target_j) matrix regresses on the teacher's
  cos(source_i, source_j) matrix);
- rec_bottle_mse: no in-batch term (MSE only);
- rec_bottle_bool: cos(source_i, target_j) regresses on the identity (bool_sim_loss);
- rec_bottle_ce: InfoNCE over scale * cos (in_batch_ce_loss; the authors weight it 0.01, [multilingual] cl_weight).
The term is weighted by [multilingual] cl_weight."""
from model.parts.sentence_embedding import SentenceDistill


class RecBottleMCL(SentenceDistill):
    paper = "Ding et al. 2022, Multi-stage Distillation Framework for Cross-Lingual Semantic Similarity Matching"
    recurrent = True
    bottleneck = True
    contrast = "mcl"


class RecMCL(RecBottleMCL):
    bottleneck = False


class RecBottleMSE(RecBottleMCL):
    contrast = None


class RecBottleBool(RecBottleMCL):
    contrast = "bool"


class RecBottleCE(RecBottleMCL):
    contrast = "ce"
