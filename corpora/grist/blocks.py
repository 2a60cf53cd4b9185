"""Building blocks shared by the GRIST programs (see corpora/grist/README.md).

Every op that can be a catalogue defect (log, exp, division, sqrt) goes through a tiny
wrapper module (Log, Exp, Div, Sqrt). torch.onnx.export names nodes after their module
scope, so a wrapper stored as `self.log_p` inside `self.head` becomes the ONNX node
"/head/log_p/Log": stable, readable, and resolvable from the registry without copying
node names by hand. Safe (fixed-twin) code paths call torch directly.

TF1 programs use TFDense (MatMul + Add, the shape tf.matmul(x, W) + b has after tf2onnx)
and TF initialisers; PyTorch programs use nn.Linear (Gemm) with PyTorch's own init.
Layouts are NCHW (PyTorch's); TF1 inputs given as NHWC are accepted in that shape and
reshaped or transposed at the graph entry.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

F32_LOWEST = -3.4028234663852886e38  # tf.float32.min


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


class Exp(nn.Module):
    def forward(self, x):
        return torch.exp(x)


class Sqrt(nn.Module):
    def forward(self, x):
        return torch.sqrt(x)


class Div(nn.Module):
    def forward(self, a, b):
        return a / b


def trunc_normal_(t, std):
    """tf.truncated_normal: resample beyond two standard deviations."""
    nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)


def xavier_(t):
    """tf.contrib.layers.xavier_initializer (uniform) on a [fan_in, fan_out] matrix."""
    nn.init.xavier_uniform_(t)


class TFDense(nn.Module):
    """tf.matmul(x, W) + b with W[n_in, n_out].

    init: "tn" truncated normal (std), "normal" (std), "zeros", "uniform" U(-1, 1),
    "xavier". bias: a constant, or None for no bias. The defaults are the TF tutorial's
    weight_variable / bias_variable (truncated normal 0.1, constant 0.1), used wherever
    the catalogue does not say how a program initialises.
    """

    def __init__(self, n_in, n_out, init="tn", std=0.1, bias=0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        if init == "tn":
            trunc_normal_(self.weight.data, std)
        elif init == "normal":
            nn.init.normal_(self.weight.data, std=std)
        elif init == "zeros":
            nn.init.zeros_(self.weight.data)
        elif init == "uniform":
            nn.init.uniform_(self.weight.data, -1.0, 1.0)
        elif init == "xavier":
            xavier_(self.weight.data)
        else:
            raise ValueError(init)
        self.bias = None if bias is None else nn.Parameter(torch.full((n_out,), float(bias)))

    def forward(self, x):
        y = torch.matmul(x, self.weight)
        return y if self.bias is None else y + self.bias


def tf_conv(c_in, c_out, k, stride=1, padding="same", std=0.1, bias=0.1):
    """tf.nn.conv2d + bias with the TF tutorial's initialisers."""
    pad = k // 2 if padding == "same" else 0
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad)
    trunc_normal_(conv.weight.data, std)
    nn.init.constant_(conv.bias.data, bias)
    return conv


def reduce_ce(t, reduce):
    """Cross-entropy reductions found in the programs, applied to t = y * log(p).

    "sum": -sum(y log p) over everything; "rowmean": mean over rows of the row sums
    (the TF tutorial's "mean CE"); "mean": mean over every element.
    """
    if reduce == "sum":
        return -t.sum()
    if reduce == "rowmean":
        return -t.sum(1).mean()
    if reduce == "mean":
        return -t.mean()
    raise ValueError(reduce)


class SoftmaxCE(nn.Module):
    """Softmax -> hand-written cross entropy; the twin uses log_softmax (Fix-L).

    relu: the program applies ReLU to the softmax before the log (19).
    clip: the twin's fix is log(clip(p, clip, 1)) instead of log_softmax (59).
    """

    def __init__(self, fixed, reduce="sum", relu=False, clip=None):
        super().__init__()
        self.fixed, self.reduce, self.relu, self.clip = fixed, reduce, relu, clip
        self.log_p = Log()

    def forward(self, logits, y):
        if self.fixed and self.clip is None:
            return reduce_ce(y * F.log_softmax(logits, 1), self.reduce)
        p = torch.softmax(logits, 1)
        if self.relu:
            p = torch.relu(p)
        if self.fixed:
            return reduce_ce(y * torch.log(torch.clamp(p, self.clip, 1.0)), self.reduce)
        return reduce_ce(y * self.log_p(p), self.reduce)


def bce_with_logits(z, y):
    """max(z, 0) - z*y + log(1 + exp(-|z|)): TF's sigmoid_cross_entropy_with_logits.

    Written out because torch 1.13 exports F.binary_cross_entropy_with_logits as
    log(sigmoid(z)) and log(1 - sigmoid(z)), i.e. the very defect it should fix.
    exp(-|z|) is in (0, 1], so the log's operand is in [1, 2].
    """
    return torch.relu(z) - z * y + torch.log(1.0 + torch.exp(-torch.abs(z)))


class BCE(nn.Module):
    """-(y log h + (1-y) log(1-h)) on h = sigmoid(z); the twin is BCE-with-logits (Fix-B).

    reduce: "mean" over all elements, or "rowmean" (sum over classes, mean over rows).
    """

    def __init__(self, fixed, reduce="mean"):
        super().__init__()
        self.fixed, self.reduce = fixed, reduce
        self.log_h = Log()
        self.log_1mh = Log()

    def forward(self, z, y):
        if self.fixed:
            t = bce_with_logits(z, y)
        else:
            h = torch.sigmoid(z)
            t = -(y * self.log_h(h) + (1 - y) * self.log_1mh(1 - h))
        return t.mean() if self.reduce == "mean" else t.sum(1).mean()


class SR784(nn.Module):
    """Softmax regression: x[N,784] @ W[784,10] + b -> softmax -> cross entropy."""

    def __init__(self, fixed, init="tn", bias=0.1, reduce="sum", **head):
        super().__init__()
        self.fc = TFDense(784, 10, init=init, bias=bias)
        self.head = SoftmaxCE(fixed, reduce, **head)

    def forward(self, x, y):
        return self.head(self.fc(x), y)


class DMC(nn.Module):
    """The TF "Deep MNIST for experts" CNN (catalogue: DMC), softmax CE.

    x is [N,784] or [N,28,28,1]; with one channel both have the NCHW memory layout, so a
    single Reshape serves both. Dropout is exported in eval mode (identity).
    """

    def __init__(self, fixed, reduce="sum", dropout=True):
        super().__init__()
        self.conv1 = tf_conv(1, 32, 5)
        self.conv2 = tf_conv(32, 64, 5)
        self.fc1 = TFDense(7 * 7 * 64, 1024)
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
        self.fc2 = TFDense(1024, 10)
        self.head = SoftmaxCE(fixed, reduce)

    def logits(self, x):
        h = x.reshape(-1, 1, 28, 28)
        h = F.max_pool2d(torch.relu(self.conv1(h)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        h = torch.relu(self.fc1(h.reshape(-1, 7 * 7 * 64)))
        return self.fc2(self.drop(h))

    def forward(self, x, y):
        return self.head(self.logits(x), y)


class TwoModels(nn.Module):
    """Programs that train two models on the same batch (45, 48): two losses."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, y):
        return self.a(x, y), self.b(x, y)
