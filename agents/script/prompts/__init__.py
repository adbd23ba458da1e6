"""Prompt templates of the script agent (package data: zh.toml, en.toml)."""
