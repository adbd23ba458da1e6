"""LLM backends of the script agent: OpenAI-compatible HTTP, local transformers/GGUF, and the hierarchical engine."""
