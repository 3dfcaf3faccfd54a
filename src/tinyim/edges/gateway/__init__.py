"""The WebSocket gateway: authenticated connections, the command router, push signals and kicks."""
