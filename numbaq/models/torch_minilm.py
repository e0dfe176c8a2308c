"""all-MiniLM-L6-v2 in PyTorch (optional extra ``torch``), from the same weights.

A plain ``nn.Module`` BERT with *padded* batches and an attention mask, the way PyTorch
users run it. It is the independent reference for numbaq's numpy encoder (tests) and the
peer for ``torch.ao.quantization.quantize_dynamic`` (benchmarks).
"""

from __future__ import annotations

import json

import numpy as np

from .minilm import model_dir


def build(path=None):
    """``(torch model, tokenizer)``; the model maps (ids, mask) to normalised embeddings."""
    import torch
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    nn, F = torch.nn, torch.nn.functional
    path = path or model_dir()
    params = {k: torch.from_numpy(v) for k, v in load_file(str(path / "model.safetensors")).items()}
    config = json.loads((path / "config.json").read_text())
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    d = config["hidden_size"]  # a constant, not a traced shape: the model exports to ONNX

    def linear(prefix):
        layer = nn.Linear(*params[f"{prefix}.weight"].shape[::-1])
        with torch.no_grad():
            layer.weight.copy_(params[f"{prefix}.weight"])
            layer.bias.copy_(params[f"{prefix}.bias"])
        return layer

    class Layer(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.q = linear(f"{p}.attention.self.query")
            self.k = linear(f"{p}.attention.self.key")
            self.v = linear(f"{p}.attention.self.value")
            self.o = linear(f"{p}.attention.output.dense")
            self.i = linear(f"{p}.intermediate.dense")
            self.out = linear(f"{p}.output.dense")
            self.n1 = (
                params[f"{p}.attention.output.LayerNorm.weight"],
                params[f"{p}.attention.output.LayerNorm.bias"],
            )
            self.n2 = (params[f"{p}.output.LayerNorm.weight"], params[f"{p}.output.LayerNorm.bias"])

        def forward(self, h, bias):
            b, t = h.shape[0], h.shape[1]
            split = lambda x: x.view(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
            scores = split(self.q(h)) @ split(self.k(h)).transpose(-1, -2) / (d // heads) ** 0.5
            ctx = (torch.softmax(scores + bias, -1) @ split(self.v(h))).transpose(1, 2)
            a = F.layer_norm(self.o(ctx.reshape(b, t, d)) + h, (d,), *self.n1, eps=eps)
            return F.layer_norm(self.out(F.gelu(self.i(a))) + a, (d,), *self.n2, eps=eps)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(
                Layer(f"encoder.layer.{i}") for i in range(config["num_hidden_layers"])
            )

        def forward(self, ids, mask):
            t = ids.shape[1]
            h = (
                params["embeddings.word_embeddings.weight"][ids]
                + params["embeddings.position_embeddings.weight"][:t]
                + params["embeddings.token_type_embeddings.weight"][0]
            )
            h = F.layer_norm(
                h,
                (d,),
                params["embeddings.LayerNorm.weight"],
                params["embeddings.LayerNorm.bias"],
                eps=eps,
            )
            bias = (1.0 - mask[:, None, None, :].float()) * -1e9
            for layer in self.layers:
                h = layer(h, bias)
            m = mask[..., None].float()
            return F.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()
    return Model().eval(), tokenizer


def encode(model, tokenizer, sentences) -> np.ndarray:
    """Embeddings of ``sentences`` as one padded batch."""
    import torch

    batch = tokenizer.encode_batch(list(sentences))
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    with torch.inference_mode():
        return model(ids, mask).numpy()
