"""The slurm backend: head services on the node `afbox up` runs on, Dask workers as srun steps."""
from .backend import SlurmBackend

__all__ = ["SlurmBackend"]
