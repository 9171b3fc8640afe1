"""Stage 1 of KARD, the teacher: prompt files, the rationale chain, the resumable runner, its cache and chat models."""
