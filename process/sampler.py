"""A DistributedSampler that can start mid-epoch, so a resumed run sees exactly the batches it missed,
and that (by default) groups examples of similar length into the same batch, so dynamic padding pads little."""
import math

import torch
from torch.utils.data import DistributedSampler

GROUP_BATCHES = 50  # batches per length-sorted pool (HF Trainer's megabatch): random enough, little padding


def grouped_by_length(indices, lengths, batch_size, generator, pool_batches=GROUP_BATCHES):
    """Reorder a shuffled index list so each run of batch_size consecutive indices has similar lengths.

    Pools of pool_batches * batch_size consecutive indices are sorted by length, cut into batches, and the
    batches of each pool are shuffled (the trailing partial batch stays last, so batches keep their
    boundaries). Every index appears exactly once; the result depends only on the inputs and the generator."""
    out, pool = [], pool_batches * batch_size
    for start in range(0, len(indices), pool):
        chunk = sorted(indices[start:start + pool], key=lambda i: lengths[i])
        batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        tail = [batches.pop()] if len(batches[-1]) < batch_size else []
        order = torch.randperm(len(batches), generator=generator).tolist()
        for b in [batches[k] for k in order] + tail:
            out.extend(b)
    return out


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded per epoch via set_epoch) that skips the first `start` samples once.

    With `lengths` (one number per example) and shuffling on, the epoch's shuffled (and padded) list is
    length-grouped in global batches of batch_size x world before the strided split, so rank r's batch k is
    its share of the same global batch a single process with batch_size x world would see (DDP with N ranks
    still trains exactly like one process with N times the batch). The order is a pure function of
    (seed, epoch, rank), so resuming mid-epoch works as before."""

    def __init__(self, dataset, num_replicas, rank, shuffle, seed, lengths=None, batch_size=1):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0
        self.lengths, self.batch_size = lengths, batch_size

    def skip(self, num_samples):
        """Skip this many of this rank's samples in the next iteration only."""
        self.start = num_samples

    def __iter__(self):
        if self.lengths is not None and self.shuffle:
            indices = self.grouped_indices()
        else:
            indices = list(super().__iter__())
        indices = indices[self.start:]
        self.start = 0
        return iter(indices)

    def grouped_indices(self):
        """This rank's share of the length-grouped global order (DistributedSampler's shuffle and padding)."""
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        padding = self.total_size - len(order)
        if padding > 0:
            order += (order * math.ceil(padding / len(order)))[:padding]
        generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        order = grouped_by_length(order, self.lengths, self.batch_size * self.num_replicas, generator)
        return order[self.rank:self.total_size:self.num_replicas]

    def __len__(self):
        return self.num_samples - self.start
