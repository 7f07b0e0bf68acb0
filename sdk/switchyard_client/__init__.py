"""Switchyard's Python SDK and `switchyard` CLI: the management API (and plain inference calls) over HTTP."""

from switchyard_client.client import APIError, Client, ConnectionFailed

__all__ = ["APIError", "Client", "ConnectionFailed"]
__version__ = "0.1.0"
