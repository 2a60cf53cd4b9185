"""Builds corpora/demo/model.onnx, the bundled default model of `scripts/demo`.

A small classifier whose loss head is written by hand as log(softmax(logits)): once
one logit leads the others by more than ~104, a softmax entry underflows to 0 in
float32 and the Log node returns -inf (the GRIST benchmark's most common defect).
Run with Debian's /usr/bin/python3; the export is deterministic (fixed seed).
"""
import os

import torch


class NaiveClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        logits = self.fc2(torch.relu(self.fc1(x)))
        return torch.log(torch.softmax(logits, dim=1))


def main():
    torch.manual_seed(0)
    model = NaiveClassifier().eval()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx")
    torch.onnx.export(model, (torch.rand(4, 16),), out, input_names=["x"],
                      output_names=["log_probs"], opset_version=13)


if __name__ == "__main__":
    main()
