"""The Python entry point on three torch modules: a naive log(softmax) head (found,
witnessed as torch tensors, fixed), the same head written with log_softmax (proved),
and a vector normalised by its norm (a division by a norm that can be 0)."""
import os
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import nanguard  # noqa: E402


class Head(torch.nn.Module):
    def __init__(self, stable):
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)
        self.stable = stable

    def forward(self, x):
        z = self.fc(x)
        return torch.log_softmax(z, -1) if self.stable else torch.log(torch.softmax(z, -1))


class Classifier(torch.nn.Module):
    def __init__(self, stable):
        super().__init__()
        self.head = Head(stable)

    def forward(self, features):
        return self.head(features)


class Normalise(torch.nn.Module):
    def forward(self, v):
        return v / v.norm(dim=-1, keepdim=True)


class EntryPoint(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_naive_head_is_found_witnessed_and_fixed(self):
        with tempfile.TemporaryDirectory() as out:
            report = nanguard.check(Classifier(False), (torch.zeros(2, 6),), ranges={"features": (-100, 100)},
                                    budget=2, out=out)
            self.assertFalse(report.proved)
            logs = [f for f in report.findings if f["op"] == "Log"]
            self.assertEqual(len(logs), 1)
            f = logs[0]
            self.assertEqual(f["hazard"], "log-nonpositive")
            self.assertEqual(f["module"], "head")
            self.assertEqual(f["status"], "fixed")
            self.assertEqual(f["fix"]["rewrite"], "log-softmax")
            x = f["witness"]["features"]
            self.assertIsInstance(x, torch.Tensor)
            self.assertEqual(tuple(x.shape), (2, 6))
            torch.manual_seed(0)
            model = Classifier(False)  # the same weights as the checked one
            self.assertFalse(torch.isfinite(model(x)).all().item())  # the witness fails in torch itself
            self.assertTrue(os.path.exists(os.path.join(out, "fixed.onnx")))
            with self.assertRaises(nanguard.NonFiniteError) as e:
                nanguard.assert_finite(Classifier(False), (torch.zeros(2, 6),), ranges={"features": (-100, 100)}, budget=0)
            self.assertIn("log-nonpositive", str(e.exception))

    def test_log_softmax_head_is_proved(self):
        report = nanguard.assert_finite(Classifier(True), (torch.zeros(2, 6),), ranges={"features": (-100, 100)})
        self.assertTrue(report.proved)
        self.assertEqual(report.findings, [])

    def test_division_by_a_norm_is_witnessed_at_zero(self):
        report = nanguard.check(Normalise(), torch.ones(3, 5), ranges={"v": (-1, 1)}, budget=2)
        divs = [f for f in report.findings if f["op"] == "Div"]
        self.assertTrue(divs, report.findings)
        self.assertIn(divs[0]["status"], ("triggered", "fixed"))
        v = divs[0]["witness"]["v"]
        self.assertFalse(torch.isfinite(Normalise()(v)).all().item())

    def test_errors_are_raised_not_printed(self):
        with self.assertRaises(nanguard.NanguardError) as e:
            nanguard.check(Normalise(), torch.ones(3, 5), ranges={"w": (-1, 1)})
        self.assertIn("'w' is not an input", str(e.exception))


if __name__ == "__main__":
    unittest.main()
