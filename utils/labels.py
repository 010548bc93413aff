"""The fill of a class label a transfer-set row does not have: the formatters write it, the task loss skips it."""
NO_LABEL = -100  # F.cross_entropy's ignore_index convention
