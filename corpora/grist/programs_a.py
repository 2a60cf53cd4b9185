"""GRIST programs built on softmax regression and small MLPs (TF1 and PyTorch).

One register() per catalogue row; rows that share an architecture loop over their ids.
Descriptions say which catalogue facts the model follows and what was assumed.
"""
import torch
import torch.nn as nn

from blocks import BCE, F32_LOWEST, Div, Exp, Log, SoftmaxCE, SR784, TFDense, TwoModels
from registry import Case, Defect, Input, free, mnist, onehot, register

LOG0 = "log-nonpositive"
FIX_L = "log(softmax(l)) -> log_softmax(l)"


def sr784_case(pid, n, desc, reduce="sum", init="tn", bias=0.1, weights=None, **head):
    fix = "log(softmax) -> log(clip(p, 1e-15, 1))" if head.get("clip") else FIX_L
    register(Case(
        pid, "TF1", f"SR784: x[{n},784] @ W[784,10] + b -> Softmax -> CE. {desc}",
        lambda fixed: SR784(fixed, init=init, bias=bias, reduce=reduce, **head),
        [mnist("x", (n, 784)), onehot("y", (n, 10))],
        [Defect(pid, "head.log_p", "Log", LOG0, note="log(softmax) underflows to log(0)")],
        fix, weights=weights or free()))


sr784_case("3", 100, "CE summed.")
sr784_case("10", 205, "CE summed.")
sr784_case("18", 100, "W truncated normal(0.1), b = 0.1; mean CE.", reduce="rowmean")
sr784_case("19", 50, "Softmax -> ReLU -> log; mean CE. Pixel range not stated: [0,1] assumed.",
           reduce="rowmean", relu=True)
for pid in ("20", "21", "30", "60"):
    sr784_case(pid, 100, "CE summed. Pixel range assumed [0,1].")
sr784_case("25", 100, "Mean CE (the program's learning rate 0.6 is not part of the graph).",
           reduce="rowmean")
sr784_case("50", 100, "Mean CE.", reduce="rowmean")
sr784_case("52", 100, "Loss: mean of -sum(sum(y*log p)) (a mean over a scalar).", reduce="sum")
sr784_case("59", 100, "W ~ U(-1,1), b = 0; clip_by_value(pred, 1e-15, 1) is computed but "
           "unused, so export drops it.", init="uniform", bias=0.0, clip=1e-15)


class SR784BinaryCE(nn.Module):
    """Program 2: softmax regression with -mean(y log p + (1-y) log(1-p))."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.fc = TFDense(784, 10, init="zeros", bias=0.0)
        self.log_p = Log()
        self.log_1mp = Log()

    def forward(self, x, y):
        p = torch.softmax(self.fc(x), 1)
        if self.fixed:  # the developer's clip: both operands kept in [1e-10, 1]
            t = y * torch.log(torch.clamp(p, 1e-10, 1.0)) + \
                (1 - y) * torch.log(torch.clamp(1 - p, 1e-10, 1.0))
        else:
            t = y * self.log_p(p) + (1 - y) * self.log_1mp(1 - p)
        return -t.mean()


register(Case(
    "2", "TF1", "SR784 with W = b = 0 initially; loss -mean(y log p + (1-y) log(1-p)). "
    "Zero weights make a fixed-weight analysis trivially safe, so weights are free in "
    "[-1, 1].",
    SR784BinaryCE, [mnist("x", (10, 784)), onehot("y", (10, 10))],
    [Defect("2a", "log_p", "Log", LOG0, note="log(p) with p underflowing to 0"),
     Defect("2b", "log_1mp", "Log", LOG0, note="log(1-p) with p rounding to 1")],
    "log(p), log(1-p) -> log(clip(p, 1e-10, 1)), log(clip(1-p, 1e-10, 1))",
    weights=free(-1.0, 1.0)))


class SigmoidMLP(nn.Module):
    """Program 9: x @ W1[784,512] -> sigmoid -> @ W2[512,10] -> sigmoid, BCE over classes."""

    def __init__(self, fixed):
        super().__init__()
        self.fc1 = TFDense(784, 512, init="zeros", bias=None)
        self.fc2 = TFDense(512, 10, init="zeros", bias=None)
        self.head = BCE(fixed, reduce="rowmean")

    def forward(self, x, y):
        return self.head(self.fc2(torch.sigmoid(self.fc1(x))), y)


register(Case(
    "9", "TF1", "Two sigmoid layers without bias, zero init; BCE summed over classes, "
    "mean over rows. Zero weights make the start trivially safe: weights free in [-1, 1].",
    SigmoidMLP, [mnist("x", (100, 784)), onehot("y", (100, 10))],
    [Defect("9a", "head.log_1mh", "Log", LOG0, note="log(1 - yhat), yhat rounds to 1"),
     Defect("9b", "head.log_h", "Log", LOG0, note="log(yhat), yhat underflows to 0")],
    "BCE -> BCE-with-logits on the last layer's pre-activation", weights=free(-1.0, 1.0)))


class HandSoftmaxMLP(nn.Module):
    """Programs 11 and 16: Flatten -> 200 -> 100 -> 10, softmax written by hand.

    p = exp(clip(l, float32.min, 87)) / sum(exp(l)): the numerator is clipped, the
    denominator is not (11a/16a: exp(l) overflows; 11c/16c: the sum underflows to 0,
    0/0). Program 16 takes log(abs(p)).
    The twin is the catalogue's fix: stable softmax exp(l - max l) / sum(...) (sum >= 1)
    and log(clip(p, 1e-6, 1)).
    """

    def __init__(self, fixed, log_abs):
        super().__init__()
        self.fixed, self.log_abs = fixed, log_abs
        self.fc1 = TFDense(784, 200)
        self.fc2 = TFDense(200, 100)
        self.fc3 = TFDense(100, 10)
        self.exp_num = Exp()
        self.exp_den = Exp()
        self.div_p = Div()
        self.log_p = Log()

    def forward(self, x, y):
        h = torch.relu(self.fc1(x.reshape(-1, 784)))
        l = self.fc3(torch.relu(self.fc2(h)))
        if self.fixed:
            e = torch.exp(l - l.max(1, keepdim=True)[0])
            p = e / e.sum(1, keepdim=True)
            return -(y * torch.log(torch.clamp(p, 1e-6, 1.0))).sum(1).mean()
        num = self.exp_num(torch.clamp(l, F32_LOWEST, 87.0))
        p = self.div_p(num, self.exp_den(l).sum(1, keepdim=True))
        if self.log_abs:
            p = torch.abs(p)
        return -(y * self.log_p(p)).sum(1).mean()


for pid, lo, log_abs in (("11", 0.0, False), ("16", -1.0, True)):
    register(Case(
        pid, "TF1", "x[100,28,28,1] -> Flatten -> FC200 ReLU -> FC100 ReLU -> FC10 -> "
        "exp(clip(l, float32.min, 87)) / sum(exp(l)) -> mean CE"
        + (" on log(abs(p))." if log_abs else "."),
        lambda fixed, a=log_abs: HandSoftmaxMLP(fixed, a),
        [Input("x", (100, 28, 28, 1), lo, 1.0), onehot("y", (100, 10))],
        [Defect(pid + "a", "exp_den", "Exp", "exp-overflow",
                note="exp(l) in the denominator overflows (INF forward, NaN after a step)"),
         Defect(pid + "b", "log_p", "Log", LOG0,
                note="log of p = 0 (num underflows or the denominator is INF)"),
         Defect(pid + "c", "div_p", "Div", "div-by-zero",
                note="sum(exp(l)) underflows to 0; with the numerator also 0 it is 0/0")],
        "stable softmax exp(l - max l)/sum and log(clip(p, 1e-6, 1))"))


class NLLMLP(nn.Module):
    """Program 12: Linear 784->98 -> ReLU -> Dropout -> Linear 98->10 -> Softmax; NLL."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.fc1 = nn.Linear(784, 98)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(98, 10)
        self.log_p = Log()

    def forward(self, x, target):
        p = torch.softmax(self.fc2(self.drop(torch.relu(self.fc1(x)))), 1)
        lp = torch.log(p + 1e-8) if self.fixed else self.log_p(p)
        return nn.functional.nll_loss(lp, target)


register(Case(
    "12", "PyTorch", "Linear 784->98 -> ReLU -> Dropout(0.5) -> Linear 98->10 -> Softmax; "
    "F.nll_loss(log(y_pred), target). Integer targets.",
    NLLMLP, [mnist("X", (128, 784)), Input("target", (128,), 0, 9, sample="int")],
    [Defect("12", "log_p", "Log", LOG0)], "log(y_pred) -> log(y_pred + 1e-8)"))


class MLP300(nn.Module):
    """FC784->300 ReLU -> Dropout -> FC10 -> softmax CE (48a adds input noise, 61)."""

    def __init__(self, fixed, noise=False, zero_out=False):
        super().__init__()
        self.noise = noise
        self.fc1 = TFDense(784, 300)
        self.drop = nn.Dropout(0.25)
        self.fc2 = TFDense(300, 10, init="zeros" if zero_out else "tn",
                           bias=0.0 if zero_out else 0.1)
        self.head = SoftmaxCE(fixed)

    def forward(self, x, y):
        if self.noise:  # tf.random_normal stays a RandomNormal node, as the catalogue asks
            x = x + 0.01 * torch.randn(100, 784)
        return self.head(self.fc2(self.drop(torch.relu(self.fc1(x)))), y)


register(Case(
    "61", "TF1", "FC784->300 ReLU -> Dropout -> FC10 (W, b zero init) -> Softmax, CE. "
    "The zero layer pins the logits at 0, so weights are free in [-1, 1].",
    lambda fixed: MLP300(fixed, zero_out=True),
    [mnist("x", (100, 784)), onehot("y", (100, 10))],
    [Defect("61", "head.log_p", "Log", LOG0)], FIX_L, weights=free(-1.0, 1.0)))


register(Case(
    "48", "TF1", "a: (x + 0.01*N(0,1)) -> FC300 ReLU -> Dropout(keep 0.75) -> FC10 -> "
    "Softmax, CE (the noise stays a RandomNormal node); b: SR784, CE. Two losses.",
    lambda fixed: TwoModels(MLP300(fixed, noise=True), SR784(fixed)),
    [mnist("x", (100, 784)), onehot("y", (100, 10))],
    [Defect("48a", "a.head.log_p", "Log", LOG0), Defect("48b", "b.head.log_p", "Log", LOG0)],
    FIX_L + " in both models", outputs=("loss_a", "loss_b")))


class Softmax2to3(nn.Module):
    """Programs 40-42: x[N,2] @ W[2,3] + b -> softmax -> CE."""

    def __init__(self, fixed):
        super().__init__()
        self.fc = TFDense(2, 3)
        self.head = SoftmaxCE(fixed)

    def forward(self, x, y):
        return self.head(self.fc(x), y)


for pid in ("40", "41", "42"):
    register(Case(
        pid, "TF1", "x[100,2] @ W[2,3] + b -> Softmax -> CE summed. With x <= 1 and "
        "initial-size weights the logits stay within a few units, so the softmax cannot "
        "underflow: weights free in [-50, 50] (training with a large step drives them there).",
        Softmax2to3, [Input("x", (100, 2), 0.35, 1.0), onehot("y", (100, 3))],
        [Defect(pid, "head.log_p", "Log", LOG0)], FIX_L, weights=free(-50.0, 50.0),
        input_notes="catalogue: col0 in [0.35, 0.8], col1 in [0.6, 1]; one box [0.35, 1] "
        "covers both columns"))
