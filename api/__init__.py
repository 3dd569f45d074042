"""pgq's HTTP API (Starlette). ``create_app()`` returns an ASGI app to serve or mount."""

from pgq.api.app import create_app

__all__ = ["create_app"]
