"""``kard demo``: a synthetic world and the stages that run the whole method on it."""
