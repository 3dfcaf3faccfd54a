"""Composition root: the only place that decides which adapter serves each port in this process."""
