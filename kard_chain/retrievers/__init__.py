"""LangChain retrievers: BM25 and a dense Chroma retriever."""
