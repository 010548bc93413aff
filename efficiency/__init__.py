"""What a model and a run cost: parameters, FLOPs, latency, throughput, the fraction of the matmul peak, and the
[CLS]-only last layer that saves most of a logits-only forward's last layer. Imports utils only."""
