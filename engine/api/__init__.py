"""The merchant admin API (issue 4): register everything with ``register_api_routes(app)``."""

from engine.api.app import register_api_routes

__all__ = ["register_api_routes"]
