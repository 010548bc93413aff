"""kd_hidden: logit KD plus hidden-state MSE (the job benchmarks/run.py times against TextBrewer's
GeneralDistiller with a `hidden_mse` intermediate match). Loss = soft_weight * KD(T) + hard_weight * CE
+ hidden_weight * sum over student layers m of MSE(student layer m, teacher layer g(m)) over the
non-padding tokens, with TinyBERT's uniform map g (6 -> 2 layers: teacher layers 2 and 5, 0-based).
Student and teacher must have the same width (no projection: that is TinyBERT's job)."""
from model.kd import KD
from model.parts.layer_map import tinybert_layer_map
from model.parts.loss import hidden_mse_loss
from utils.errors import ConfigError


class KDHidden(KD):
    paper = None  # a helper (the benchmark's job): KD plus one MSE, no paper of its own
    uses_hidden = True

    def __init__(self, config):
        super().__init__(config)
        t_config, s_config = self.teacher.config, self.student_model().config
        if t_config.hidden_size != s_config.hidden_size:
            raise ConfigError(f"[model] model_name = kd_hidden: student width {s_config.hidden_size} differs from the "
                              f"teacher's {t_config.hidden_size}; use tinybert (it projects) or a student of the same width")
        teacher_layers = tinybert_layer_map(t_config.num_hidden_layers, s_config.num_hidden_layers)
        self.pairs = list(enumerate(teacher_layers))  # (student layer, teacher layer), 0-based
        self.hidden_weight = config.get("kd_hidden", "hidden_weight")

    def intermediate_loss(self, out, student_hidden, teacher_hidden):
        """hidden_weight * summed masked MSE; hidden_states[l + 1] is the output of layer l."""
        mask = self._mask
        out["loss_hidden"] = sum(hidden_mse_loss(student_hidden[s + 1], teacher_hidden[t + 1], mask) for s, t in self.pairs)
        return self.hidden_weight * out["loss_hidden"]

    def forward(self, batch):
        self._mask = batch.get("attention_mask")
        return super().forward(batch)
