"""The check every word-level student shares: its ids come from one formatter, whose vocabulary init/ builds once."""
from utils.errors import ConfigError


def require_vocab(config, word_vocab, formatter="word_vocab", reads="word ids"):
    """`word_vocab` when the run's formatter is `formatter` (the one that makes it); else one line naming the key."""
    if config.get("data", "formatter_type") != formatter or word_vocab is None:
        raise ConfigError(f"{config.source('data', 'formatter_type')}: [data] formatter_type = "
                          f"{config.get('data', 'formatter_type')}: model '{config.get('model', 'model_name')}' reads "
                          f"{reads}; set {formatter}")
    return word_vocab
