"""The trajectory viewer: read-only web pages and a JSON API over a trajectory database."""

from collector.viewer.app import create_app, serve

__all__ = ["create_app", "serve"]
