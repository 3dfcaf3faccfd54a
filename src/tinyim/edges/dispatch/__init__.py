"""The dispatch HTTP API: register, login, gateway allocation."""
