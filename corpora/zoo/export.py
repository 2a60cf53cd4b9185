"""The zoo: clean real architectures, each with three heads, exported on demand.

    export.py [--only resnet18,...] [--list]

For every model: plain.onnx (the logits), model.onnx (a naive log(softmax(logits)) head:
one defect, the Log node "/head/log_p/Log") and fixed.onnx (log_softmax: safe), written
to corpora/zoo/cache/<name>/ (git-ignored; vgg16 alone is 0.5 GB per file) with a
case.json in the GRIST schema. cases.json (committed) holds the same case descriptions
for all models; --list rewrites it without exporting anything.

Weights are torchvision's / PyTorch's random initialisation under a fixed seed (no
downloads) and are analysed as fixed: these are false-alarm cases for a trained model.
With such weights the logits stay within a few units, so the naive head is a latent
defect: it fires only where the logits spread by more than about 104 (the float32
softmax underflow), e.g. a confident trained checkpoint or free weights in the last layer.
"""
import argparse
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, List

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "grist"))
from blocks import Log  # noqa: E402
from registry import Input, sample_inputs  # noqa: E402

CACHE = os.path.join(HERE, "cache")
VARIANTS = ("plain", "model", "fixed")  # file stems: logits, naive head, log_softmax head
TRUTH_NODE = "/head/log_p/Log"


@dataclass
class ZooSpec:
    name: str
    body: Callable[[], nn.Module]
    inputs: List[Input]
    description: str
    opset: int = 13


class TransformerClassifier(nn.Module):
    """nn.TransformerEncoder (4 layers, d_model 256, 8 heads) -> mean over tokens -> 10."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 4)
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc(self.encoder(x).mean(1))


class LSTMLanguageModel(nn.Module):
    """Embedding(10000, 256) -> 2-layer LSTM(256) -> Linear(256, 10000) next-token logits."""

    def __init__(self, vocab=10000, dim=256):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, 2, batch_first=True)
        self.decoder = nn.Linear(dim, vocab)

    def forward(self, tokens):
        return self.decoder(self.lstm(self.embedding(tokens))[0])


class CausalDecoder(nn.Module):
    """GPT-2-small's shape: token and learned position embeddings (50257 x 768, 16 x 768)
    -> 12 pre-norm nn.TransformerEncoderLayer (12 heads, 3072, GELU) under the -inf
    causal mask of nn.Transformer.generate_square_subsequent_mask -> LayerNorm -> logits
    through the token embedding (tied, as GPT-2's)."""

    def __init__(self, vocab=50257, dim=768, layers=12, heads=12, positions=16):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.randn(positions, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(positions))

    def forward(self, tokens):
        h = self.blocks(self.embedding(tokens) + self.positions, mask=self.causal)
        return self.norm(h) @ self.embedding.weight.t()


def _vision(name):
    return lambda: getattr(torchvision.models, name)(weights=None)


IMAGE = [Input("x", (1, 3, 224, 224), 0.0, 1.0)]
SPECS = [ZooSpec(n, _vision(n), IMAGE, f"torchvision {n} (weights=None, eval), 1000 classes")
         for n in ("resnet18", "resnet50", "mobilenet_v2", "densenet121", "vgg16")] + [
    ZooSpec("transformer", TransformerClassifier, [Input("x", (1, 16, 256), -3.0, 3.0)],
            "nn.TransformerEncoder, 4 layers, d_model 256, 8 heads, batch_first, over 16 "
            "token embeddings -> mean -> Linear 10"),
    ZooSpec("lstm_lm", LSTMLanguageModel, [Input("tokens", (1, 16), 0, 9999, sample="int")],
            "LSTM language model: Embedding(10000, 256) -> 2-layer LSTM(256) -> "
            "Linear(256, 10000), logits for every position"),
    ZooSpec("gpt2_decoder", CausalDecoder, [Input("tokens", (1, 16), 0, 50256, sample="int")],
            "GPT-2-small-shaped causal decoder: Embedding(50257, 768) + positions -> 12 pre-norm "
            "nn.TransformerEncoderLayer (12 heads, 3072, GELU) with the -inf causal mask "
            "(nn.Transformer.generate_square_subsequent_mask) -> LayerNorm -> tied logits for every position"),
    ZooSpec("gpt2_medium_decoder", lambda: CausalDecoder(dim=1024, layers=24, heads=16),
            [Input("tokens", (1, 16), 0, 50256, sample="int")],
            "GPT-2-medium-shaped causal decoder (354M parameters): as gpt2_decoder with d 1024, 24 layers, "
            "16 heads, 4096 wide"),
]


class Head(nn.Module):
    """plain: the logits; model: log(softmax) (the defect); fixed: log_softmax."""

    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.log_p = Log()  # parameter-free: only the naive head's graph contains it

    def forward(self, logits):
        if self.variant == "model":
            return self.log_p(torch.softmax(logits, -1))
        if self.variant == "fixed":
            return F.log_softmax(logits, -1)
        return logits


class Headed(nn.Module):
    def __init__(self, body, variant):
        super().__init__()
        self.body, self.head = body, Head(variant)

    def forward(self, *x):
        return self.head(self.body(*x))


def build(spec: ZooSpec, variant: str, seed_inputs: int = 0):
    """The module (same weights for every variant) and in-range example inputs."""
    torch.manual_seed(0)
    return Headed(spec.body(), variant).eval(), sample_inputs(spec, seed=seed_inputs)


def case_json(spec: ZooSpec) -> dict:
    return {
        "program": f"zoo/{spec.name}",
        "framework": "PyTorch",
        "description": spec.description + ". model.onnx: naive log(softmax) head; "
        "fixed.onnx: log_softmax head; plain.onnx: the logits (safe, no head).",
        "inputs": {i.name: ([int(i.lo), int(i.hi)] if i.is_int else [i.lo, i.hi])
                   for i in spec.inputs},
        "input_notes": "",
        "weights": {"mode": "fixed"},
        "dims": {},
        "defects": [{"id": f"{spec.name}-head", "node": TRUTH_NODE, "op": "Log",
                     "kind": "forward", "hazard": "log-nonpositive",
                     "note": "log(softmax): reachable only when the logits spread by more "
                     "than ~104; with these random-init weights that may be out of reach"}],
        "fixed": {"model": "fixed.onnx", "safe": True, "fix": "log(softmax) -> log_softmax"},
    }


def export(spec: ZooSpec):
    folder = os.path.join(CACHE, spec.name)
    os.makedirs(folder, exist_ok=True)
    for variant in VARIANTS:
        model, args = build(spec, variant)
        path = os.path.join(folder, f"{variant}.onnx")
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, tuple(args), buf, opset_version=spec.opset,
                              input_names=[i.name for i in spec.inputs],
                              output_names=["logits" if variant == "plain" else "log_probs"],
                              do_constant_folding=True)
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        if variant == "model":
            nodes = {n.name: n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node}
            assert nodes.get(TRUTH_NODE) == "Log", f"{spec.name}: no {TRUTH_NODE}"
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(case_json(spec), f, indent=2)
        f.write("\n")


def cached_cases():
    """(spec, variant, onnx path, case.json) for every zoo file already exported."""
    for spec in SPECS:
        folder = os.path.join(CACHE, spec.name)
        doc_path = os.path.join(folder, "case.json")
        if not os.path.exists(doc_path):
            continue
        with open(doc_path) as f:
            doc = json.load(f)
        for variant in VARIANTS:
            path = os.path.join(folder, f"{variant}.onnx")
            if os.path.exists(path):
                yield spec, variant, path, doc


def write_list():
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({s.name: case_json(s) for s in SPECS}, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--list", action="store_true", help="only rewrite cases.json")
    a = ap.parse_args()
    write_list()
    if a.list:
        return
    only = set(filter(None, a.only.split(",")))
    for spec in SPECS:
        if not only or spec.name in only:
            export(spec)
            print(f"zoo {spec.name}: ok", flush=True)


if __name__ == "__main__":
    main()
