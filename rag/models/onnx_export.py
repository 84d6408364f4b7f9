"""Export e5-small's encoder to ONNX (build time, needs torch; run by `rag models install`).

The graph starts after the token-embedding lookup (see rag.embed.onnx for why).
"""
from __future__ import annotations

import warnings
from pathlib import Path

OPSET = 17


def export(model_dir: Path, out: Path) -> None:
    """Write the encoder of the sentence-transformers directory ``model_dir`` to ``out``.

    Inputs ``embeds`` (batch, tokens, hidden) and ``mask`` (batch, tokens); output
    ``pooled``: the masked mean of the last hidden states (not normalized).
    """
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                      attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    hidden = model.config.hidden_size
    embeds = torch.randn(2, 7, hidden)
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, 5:] = 0
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(), (embeds, mask), str(out), input_names=["embeds", "mask"],
                          output_names=["pooled"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"embeds": {0: "batch", 1: "tokens"},
                                        "mask": {0: "batch", 1: "tokens"}, "pooled": {0: "batch"}})


