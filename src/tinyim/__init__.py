"""TinyIM: a WeChat-style instant-messaging server (timeline write diffusion, push a signal then pull)."""

__version__ = "0.1.0"
