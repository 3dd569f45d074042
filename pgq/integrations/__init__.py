"""Integrations of pgq with other libraries and frameworks (each imports its framework lazily)."""
