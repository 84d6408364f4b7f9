"""Dense legs of the index, by name: `faiss` (embedded default); more through `rag.backends`."""
from rag.index.dense.base import DenseBackend, DenseIndex
from rag.index.dense.faiss_flat import ANN_KINDS, FaissBackend
from rag.plugins import Registry

BACKENDS: Registry[DenseBackend] = Registry("rag.backends", "index backend")
BACKENDS.register("faiss", FaissBackend())
DEFAULT_BACKEND = "faiss"

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DenseBackend", "DenseIndex", "FaissBackend", "ANN_KINDS"]
