"""Agents: one module per method, each with get_config() and create()."""
