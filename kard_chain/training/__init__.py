"""What the reranker and student trainers share: the config base, the loop, checkpoints and batches."""
