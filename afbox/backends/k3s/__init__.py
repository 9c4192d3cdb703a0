"""The k3s backend: the facility's services as Kubernetes objects, applied with the k3s binary."""
from .backend import K3sBackend

__all__ = ["K3sBackend"]
