"""GRIST programs: small PyTorch scripts (no weights, logistic regression, 3-class softmax).

Programs without weights (4, 5, 13, 23, 27, 46, 57) take their unbounded inputs in
[-100, 100] rather than the usual [-50, 50]: nothing amplifies the input, and with
[-50, 50] exp never overflows (exp(50) = 5e21) and a softmax output never underflows to
0 (the gap must exceed about 104), so the defect would be unreachable.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import BCE, Exp, Log
from registry import FIXED, Case, Defect, Input, free, onehot, register, unbounded

LOG0 = "log-nonpositive"
WIDE = (-100.0, 100.0)
WIDE_NOTE = "original unbounded; [-100, 100] used (no weights amplify it; see README)"
PLAIN_NOTE = "original unbounded; [-50, 50] used"


class KLOnly(nn.Module):
    """Program 4: VAE KL term with an identity encoder, mu = logvar = x."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.exp_lv = Exp()

    def forward(self, x):
        mu, logvar = x, x
        if self.fixed:
            logvar = logvar.clamp(max=10)
        e = torch.exp(logvar) if self.fixed else self.exp_lv(logvar)
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - e)


register(Case(
    "4", "PyTorch", "VAE KL term only: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) with "
    "mu = logvar = x (identity encoder, no weights).", KLOnly,
    [Input("x", (3, 2), *WIDE)],
    [Defect("4", "exp_lv", "Exp", "exp-overflow")], "logvar.clamp(max=10)",
    weights=FIXED, input_notes="starts at [[1,-1],[1,2],[2,1]]; " + WIDE_NOTE))


class RankingCE(nn.Module):
    """Program 5: scores[6,1] -> strided slices -> concat [2,3] -> softmax -> CE."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.log_p = Log()

    def forward(self, scores, labels):
        s = torch.cat([scores[0::3], scores[1::3], scores[2::3]], 1)
        lp = F.log_softmax(s, 1) if self.fixed else self.log_p(torch.softmax(s, 1))
        return -torch.mean(torch.sum(labels * lp, 1))


register(Case(
    "5", "PyTorch", "Ranking cross entropy with 2 negatives: scores[6,1] -> strided slices "
    "[0::3], [1::3], [2::3] -> Concat [2,3] -> Softmax -> -mean(sum(labels * log)).",
    RankingCE, [Input("scores", (6, 1), *WIDE), onehot("labels", (2, 3))],
    [Defect("5", "log_p", "Log", LOG0)], "log(softmax) -> log_softmax", weights=FIXED,
    input_notes="scores start in {0.1, 0.8}; " + WIDE_NOTE + "; labels {0,1}"))


class EdgeSoftmax(nn.Module):
    """Program 13: edge softmax exp(src) / scatter_add(exp(src), index)[index].

    The twin subtracts each group's max, found with a constant group mask (the index is
    fixed), because scatter-max needs ScatterElements reduction=max (opset 18).
    """

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.register_buffer("index", torch.tensor([0, 0, 0, 1, 1, 1]))
        self.exp_src = Exp()

    def forward(self, src):
        if self.fixed:
            mask = self.index.unsqueeze(0) == torch.arange(2).unsqueeze(1)
            group_max = torch.where(mask, src.unsqueeze(0), torch.tensor(-3.0e38)).max(1)[0]
            e = torch.exp(src - group_max[self.index])
        else:
            e = self.exp_src(src)
        den = torch.zeros(2).scatter_add(0, self.index, e)
        return e / den[self.index]


register(Case(
    "13", "PyTorch", "Edge softmax over two groups of three edges: exp(src) / "
    "scatter_add(exp(src), index)[index], index = [0,0,0,1,1,1] (a constant). "
    "ScatterElements with reduction=add needs opset 16.", EdgeSoftmax,
    [Input("src", (6,), *WIDE)],
    [Defect("13", "exp_src", "Exp", "exp-overflow",
            note="exp overflows; the Div then computes INF/INF = NaN")],
    "subtract the per-group max before exp", weights=FIXED, outputs=("out",), opset=16,
    input_notes="starts at [0,1,2,0,1,2]; " + WIDE_NOTE))


class SoftmaxNLLNoWeights(nn.Module):
    """Programs 23, 27, 46, 57: z[3,5] -> softmax -> -log * onehot(y) -> sum -> mean."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.log_p = Log()

    def forward(self, z, y):
        lp = F.log_softmax(z, 1) if self.fixed else self.log_p(torch.softmax(z, 1))
        return (-lp * F.one_hot(y, 5).float()).sum(1).mean()


for pid in ("23", "27", "46", "57"):
    register(Case(
        pid, "PyTorch", "No weights: z[3,5] -> Softmax -> -log * one_hot(y) -> sum -> mean "
        "(programs 23, 27, 46 and 57 share this graph).", SoftmaxNLLNoWeights,
        [Input("z", (3, 5), *WIDE), Input("y", (3,), 0, 4, sample="int")],
        [Defect(pid, "log_p", "Log", LOG0)], "log(softmax) -> log_softmax", weights=FIXED,
        input_notes="z starts U[0,1); " + WIDE_NOTE))


class LogisticRegression(nn.Module):
    """Linear(k, 1) -> Sigmoid -> hand-written BCE (26, 33, 37, 38, 53, 56)."""

    def __init__(self, fixed, k=2):
        super().__init__()
        self.fc = nn.Linear(k, 1)
        self.head = BCE(fixed)

    def forward(self, x, y):
        return self.head(self.fc(x), y)


# A weight of one or two elements has a (nearly) degenerate derived range, and with
# |w| < 2 the sigmoid of w*x, |x| <= 50, never reaches 0: the weights get a box.
LR_WEIGHTS = free(-5.0, 5.0)
LR62_NOTE = "x starts at [[1,2],[2,3],[3,1],[4,3],[5,3],[6,2]]; " + PLAIN_NOTE
for pid in ("26", "33", "56", "37"):
    register(Case(
        pid, "PyTorch", "LR62: x[6,2] -> Linear(2,1) -> Sigmoid -> "
        "-mean(y log h + (1-y) log(1-h)).", LogisticRegression,
        [unbounded("x", (6, 2)), Input("y", (6, 1), 0, 1, sample="int")],
        [Defect(pid, "head.log_h", "Log", LOG0,
                note="log(h), h underflows to 0; log(1-h) (head.log_1mh) is the same defect "
                "on the other label and is not counted separately by the catalogue")],
        "hand BCE -> BCE-with-logits", weights=LR_WEIGHTS,
        input_notes=LR62_NOTE + "; y in {0,1}"))

register(Case(
    "38", "PyTorch", "XOR: x[4,2] -> Linear(2,1) -> Sigmoid -> -mean(y log h + (1-y) log(1-h)).",
    LogisticRegression, [unbounded("x", (4, 2)), Input("y", (4, 1), 0, 1, sample="int")],
    [Defect("38", "head.log_h", "Log", LOG0, note="log(1-h) is the same defect on label 0")],
    "hand BCE -> BCE-with-logits", weights=LR_WEIGHTS,
    input_notes="x starts in {0,1}; " + PLAIN_NOTE))

register(Case(
    "53", "PyTorch", "x[12,1] -> Linear(1,1) -> Sigmoid -> -mean(y log h + (1-y) log(1-h)).",
    lambda fixed: LogisticRegression(fixed, k=1),
    [unbounded("x", (12, 1)), Input("y", (12, 1), 0, 1, sample="int")],
    [Defect("53", "head.log_h", "Log", LOG0, note="log(1-h) is the same defect on label 0")],
    "hand BCE -> BCE-with-logits", weights=LR_WEIGHTS,
    input_notes="x starts in [0,5]; " + PLAIN_NOTE))


class Softmax4to3(nn.Module):
    """x[8,4] @ W[4,3] + b -> softmax -> -log, with b a scalar (32, 34), [3] (47), [1,3] (54)."""

    def __init__(self, fixed, bias_shape, rowmean):
        super().__init__()
        self.fixed, self.rowmean = fixed, rowmean
        self.W = nn.Parameter(torch.randn(4, 3))
        self.b = nn.Parameter(torch.randn(*bias_shape))
        self.log_p = Log()

    def forward(self, x, y):
        l = torch.matmul(x, self.W) + self.b
        lp = F.log_softmax(l, 1) if self.fixed else self.log_p(torch.softmax(l, 1))
        t = (y * -lp).sum(1)
        return t.mean() if self.rowmean else t.sum()


for pid, bias_shape, rowmean, what in (
        ("32", (1,), False, "scalar b; sum(onehot * -log)"),
        ("34", (1,), True, "scalar b; mean over rows of sum(onehot * -log)"),
        ("47", (3,), False, "b[3]; sum(onehot * -log)"),
        ("54", (1, 3), False, "b[1,3]; sum(onehot * -log)")):
    register(Case(
        pid, "PyTorch", f"x[8,4] @ W[4,3] + b -> Softmax -> CE; {what}. W, b ~ randn.",
        lambda fixed, s=bias_shape, r=rowmean: Softmax4to3(fixed, s, r),
        [unbounded("x", (8, 4)), onehot("y", (8, 3))],
        [Defect(pid, "log_p", "Log", LOG0)], "softmax + log -> log_softmax (cross_entropy)",
        input_notes="x starts as integers 1..7; " + PLAIN_NOTE))
