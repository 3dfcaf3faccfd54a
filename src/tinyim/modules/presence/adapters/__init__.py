"""Adapters of the presence ports."""
