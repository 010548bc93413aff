"""A DistributedSampler that can start mid-epoch, so a resumed run sees exactly the batches it missed."""
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded per epoch via set_epoch) that skips the first `start` samples once."""

    def __init__(self, dataset, num_replicas, rank, shuffle, seed):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def skip(self, num_samples):
        """Skip this many of this rank's samples in the next iteration only."""
        self.start = num_samples

    def __iter__(self):
        indices = list(super().__iter__())[self.start:]
        self.start = 0
        return iter(indices)

    def __len__(self):
        return self.num_samples - self.start
