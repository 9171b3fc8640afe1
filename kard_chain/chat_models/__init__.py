"""LangChain chat models of our own (local Hugging Face teachers)."""
