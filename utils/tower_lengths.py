"""The two towers' token budgets of the text-matching methods, read by their formatter and their models alike."""


def tower_lengths(config):
    """(Lq, Ld) from [match], falling back to [data] max_seq_length; config/default.config's ranges (0 or >= 3,
    and >= 3) make each hold [CLS] x [SEP]."""
    return tuple(config.get("match", key) or config.get("data", "max_seq_length")
                 for key in ("max_seq_length_query", "max_seq_length_doc"))
