"""Adapters of the relation ports."""
