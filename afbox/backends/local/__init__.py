"""The local backend: every service a program of one supervisord per facility on this host."""
from .backend import LocalBackend

__all__ = ["LocalBackend"]
