"""Adapters of the auth ports."""
