"""Edges: the protocols spoken to clients (HTTP dispatch, WebSocket gateway, file gateway)."""
