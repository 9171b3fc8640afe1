"""Stage 4 of KARD, the student: LLM wrappers, the one formatter, training pairs, saved settings and the trainer."""
