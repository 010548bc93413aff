"""The fixed held-out split of a task's only labelled file (BoolQ's public dev file, CoLA's train file).

Row i (0-based among the data rows) goes to the held-out part when i % every == every - 1, else to train; the valid
and test modes both read the held-out part. No shuffling, no seed: the split is a function of the file alone, so
every run, method and seed is scored on the same rows and never trains on them."""


def split_rows(rows, every, mode):
    """The rows `mode` reads: train the rest, valid and test the held-out part."""
    keep_heldout = mode != "train"
    return [row for i, row in enumerate(rows) if (i % every == every - 1) == keep_heldout]
