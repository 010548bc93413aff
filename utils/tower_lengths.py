"""The two towers' token budgets of the text-matching methods, read by their formatter and their models alike."""
from utils.errors import ConfigError


def tower_lengths(config):
    """(Lq, Ld) from [match], falling back to [data] max_seq_length; each must hold [CLS] x [SEP]."""
    lengths = []
    for key in ("max_seq_length_query", "max_seq_length_doc"):
        value = config.get("match", key) or config.get("data", "max_seq_length")
        if value < 3:
            raise ConfigError(f"{config.source('match', key)}: [match] {key} = {value}: a tower needs at least 3 tokens "
                              "([CLS] text [SEP])")
        lengths.append(value)
    return tuple(lengths)
