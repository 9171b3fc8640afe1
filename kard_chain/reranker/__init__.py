"""Stages 2-3 of KARD, the reranker: the model, its training candidates, stored passage vectors, losses and trainer."""
