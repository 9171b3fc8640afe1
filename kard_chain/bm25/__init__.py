"""BM25 in our own pickle-free format: the index, its scoring kernels, the tokenizer and the passage store."""
