"""Adapters of the timeline ports."""
