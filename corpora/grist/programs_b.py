"""GRIST programs built on convolutional networks (all TF1).

DMC is the TF "Deep MNIST for experts" CNN (blocks.DMC). Programs 1 (spatial
transformer, GridSample), 15 (value iteration network, GatherND, unrolled loop) and 17
(U-Net) are the ONNX stress cases of the catalogue.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import DMC, Div, Exp, Log, SoftmaxCE, SR784, TFDense, TwoModels, tf_conv, trunc_normal_
from registry import Case, Defect, Input, free, mnist, onehot, register

LOG0 = "log-nonpositive"
FIX_L = "log(softmax(l)) -> log_softmax(l)"


def dmc_case(pid, n, desc, nhwc=False, dropout=True):
    shape = (n, 28, 28, 1) if nhwc else (n, 784)
    register(Case(
        pid, "TF1", f"DMC (Deep-MNIST CNN), x{list(shape)}, CE summed. {desc}",
        lambda fixed: DMC(fixed, dropout=dropout),
        [mnist("x", shape), onehot("y", (n, 10))],
        [Defect(pid, "head.log_p", "Log", LOG0, note="log(softmax) underflows to log(0)")],
        FIX_L))


for pid in ("6", "7", "8", "55", "58"):
    dmc_case(pid, 50, "")
dmc_case("24", 100, "No dropout in the program (the other DMCs' eval-mode Dropout is an "
         "identity too, so the graph is the same).", dropout=False)
dmc_case("29", 100, "Input given as [N,28,28,1].", nhwc=True)

register(Case(
    "45", "TF1", "Two models on one batch: a SR784, CE; b DMC, CE. Two losses.",
    lambda fixed: TwoModels(SR784(fixed), DMC(fixed)),
    [mnist("x", (50, 784)), onehot("y", (50, 10))],
    [Defect("45a", "a.head.log_p", "Log", LOG0), Defect("45b", "b.head.log_p", "Log", LOG0)],
    FIX_L + " in both models", outputs=("loss_a", "loss_b")))


class SmallCNN(nn.Module):
    """Program 44: Conv5x5x16 SAME ReLU -> Pool -> FC3136->128 ReLU -> Dropout -> FC10."""

    def __init__(self, fixed):
        super().__init__()
        self.conv = tf_conv(1, 16, 5)
        self.fc1 = TFDense(14 * 14 * 16, 128)
        self.drop = nn.Dropout(0.5)
        self.fc2 = TFDense(128, 10)
        self.head = SoftmaxCE(fixed)

    def forward(self, x, y):
        h = F.max_pool2d(torch.relu(self.conv(x.reshape(-1, 1, 28, 28))), 2)
        h = self.drop(torch.relu(self.fc1(h.reshape(-1, 14 * 14 * 16))))
        return self.head(self.fc2(h), y)


register(Case(
    "44", "TF1", "Conv5x5x16 SAME ReLU -> MaxPool2 -> FC3136->128 ReLU -> Dropout -> FC10 "
    "-> Softmax, CE summed.", SmallCNN,
    [mnist("x", (50, 28, 28, 1)), onehot("y", (50, 10))],
    [Defect("44", "head.log_p", "Log", LOG0)], FIX_L))


class LeNet5(nn.Module):
    """Program 14: LeNet-5 on 32x32 inputs (MNIST padded), VALID convolutions."""

    def __init__(self, fixed):
        super().__init__()
        self.c1 = tf_conv(1, 6, 5, padding="valid")
        self.c3 = tf_conv(6, 16, 5, padding="valid")
        self.c5 = tf_conv(16, 120, 5, padding="valid")
        self.f6 = TFDense(120, 84)
        self.out = TFDense(84, 10)
        self.head = SoftmaxCE(fixed)

    def forward(self, x, y):
        h = x.permute(0, 3, 1, 2)
        h = F.max_pool2d(torch.relu(self.c1(h)), 2)
        h = F.max_pool2d(torch.relu(self.c3(h)), 2)
        h = torch.relu(self.c5(h)).reshape(-1, 120)
        return self.head(self.out(torch.relu(self.f6(h))), y)


register(Case(
    "14", "TF1", "LeNet-5: Conv5x5x6 VALID ReLU -> MaxPool -> Conv5x5x16 ReLU -> MaxPool -> "
    "Conv5x5x120 ReLU -> FC84 ReLU -> FC10 -> Softmax, CE summed.", LeNet5,
    [mnist("x", (64, 32, 32, 1)), onehot("y", (64, 10))],
    [Defect("14", "head.log_p", "Log", LOG0)], FIX_L,
    input_notes="MNIST padded to 32x32; pixels in [0,1]"))


class SpatialTransformer(nn.Module):
    """Program 1: localisation MLP -> affine grid -> bilinear sampler -> CNN classifier.

    The affine grid is written out (a constant [1600,3] base grid @ theta^T, as the TF
    transformer builds it from a meshgrid) because torch 1.13 cannot export
    affine_grid; the bilinear sampler is ONNX GridSample (opset 16).
    """

    def __init__(self, fixed):
        super().__init__()
        self.loc1 = TFDense(1600, 20, std=0.01, bias=0.0)
        self.drop1 = nn.Dropout(0.2)
        self.loc2 = TFDense(20, 6, std=0.01, bias=0.0)
        with torch.no_grad():  # the TF example starts theta at the identity transform
            self.loc2.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))
        lin = torch.linspace(-1, 1, 40)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("base", torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1600, 3))
        self.conv1 = tf_conv(1, 16, 3, stride=2)
        self.conv2 = tf_conv(16, 16, 3, stride=2)
        self.fc1 = TFDense(1600, 1024)
        self.drop2 = nn.Dropout(0.5)
        self.fc2 = TFDense(1024, 10)
        self.head = SoftmaxCE(fixed)

    def forward(self, x, y):
        theta = torch.tanh(self.loc2(self.drop1(torch.tanh(self.loc1(x)))))
        grid = torch.matmul(self.base, theta.reshape(-1, 2, 3).transpose(1, 2))
        img = F.grid_sample(x.reshape(-1, 1, 40, 40), grid.reshape(-1, 40, 40, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
        h = torch.relu(self.conv2(torch.relu(self.conv1(img))))
        h = self.drop2(torch.relu(self.fc1(h.reshape(-1, 1600))))
        return self.head(self.fc2(h), y)


register(Case(
    "1", "TF1", "Spatial transformer on 40x40 cluttered MNIST: FC1600->20 tanh -> Dropout "
    "-> FC20->6 tanh (theta, bias starts at the identity) -> affine grid + bilinear "
    "GridSample 40x40 -> Conv3x3/2x16 ReLU x2 -> FC1600->1024 ReLU -> Dropout -> FC10 -> "
    "Softmax, CE summed.", SpatialTransformer,
    [mnist("x", (100, 1600)), onehot("y", (100, 10))],
    [Defect("1", "head.log_p", "Log", LOG0)], FIX_L, opset=16, large=True))


class GatherND(torch.autograd.Function):
    """ONNX GatherND with batch_dims=1 (the catalogue's tf.gather_nd, kept as one node)."""

    @staticmethod
    def _index(data, idx):
        # batch index broadcast over idx's own batch shape idx.shape[:-1]
        b = torch.arange(data.shape[0]).reshape(-1, *([1] * (idx.dim() - 2)))
        return (b,) + tuple(idx[..., k] for k in range(idx.shape[-1]))

    @staticmethod
    def forward(ctx, data, idx):
        ctx.save_for_backward(idx)
        ctx.shape = data.shape
        return data[GatherND._index(data, idx)]

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.shape)
        return out.index_put_(GatherND._index(out, idx), grad, accumulate=True), None

    @staticmethod
    def symbolic(g, data, idx):
        return g.op("GatherND", data, idx, batch_dims_i=1)


class VIN(nn.Module):
    """Program 15: value iteration network, k = 10, on 8x8 grid worlds."""

    def __init__(self, fixed, k=10, ch_q=10):
        super().__init__()
        self.k = k
        self.h = nn.Conv2d(2, 150, 3, padding=1)
        self.r = nn.Conv2d(150, 1, 1, bias=False)
        self.w = nn.Parameter(torch.empty(ch_q, 1, 3, 3))
        self.w_fb = nn.Parameter(torch.empty(ch_q, 1, 3, 3))
        self.w_o = nn.Parameter(torch.empty(ch_q, 8))
        for p in (self.h.weight, self.r.weight, self.w, self.w_fb, self.w_o):
            nn.init.normal_(p.data, std=0.01)
        nn.init.zeros_(self.h.bias.data)
        self.fixed = fixed
        self.log_p = Log()

    def forward(self, X, S1, S2, y):
        r = self.r(self.h(X.permute(0, 3, 1, 2)))
        q = F.conv2d(r, self.w, padding=1)
        v = q.max(1, keepdim=True)[0]
        w_rv = torch.cat([self.w, self.w_fb], 1)  # the shared weights of every iteration
        for _ in range(self.k - 1):
            q = F.conv2d(torch.cat([r, v], 1), w_rv, padding=1)
            v = q.max(1, keepdim=True)[0]
        q_out = GatherND.apply(q.permute(0, 2, 3, 1), torch.stack([S1, S2], 1))
        logits = torch.matmul(q_out, self.w_o)
        lp = F.log_softmax(logits, 1) if self.fixed else self.log_p(torch.softmax(logits, 1))
        return -GatherND.apply(lp, y.unsqueeze(1)).mean()


register(Case(
    "15", "TF1", "Value iteration network, k=10: Conv3x3 2->150 (+bias) -> Conv1x1 -> r -> "
    "Conv3x3 -> q[10] -> max -> 9 x [Conv over concat(r, v) with shared weights -> max] "
    "-> GatherND(S1, S2) -> MatMul[10,8] -> Softmax -> Log -> GatherND(y) -> -mean. "
    "Weights start N(0, 0.01); with them the logits stay tiny, so weights are free in "
    "[-1, 1].", VIN,
    [Input("X", (12, 8, 8, 2), -1.0 / 255, 10.0), Input("S1", (12,), 1, 6, sample="int"),
     Input("S2", (12,), 1, 6, sample="int"), Input("y", (12,), 0, 7, sample="int")],
    [Defect("15", "log_p", "Log", LOG0)], "log(softmax) -> log_softmax before GatherND(y)",
    weights=free(-1.0, 1.0),
    input_notes="catalogue: X channel 0 in {-1/255, 0} (obstacles), channel 1 in {0, 10} "
    "(goal); one box [-1/255, 10] covers both channels"))


def _unet_conv(c_in, c_out, k=3):
    """tf_unet's initialisers: truncated normal sqrt(2 / (k*k*c_out)), bias 0.1."""
    return tf_conv(c_in, c_out, k, padding="valid", std=(2.0 / (k * k * c_out)) ** 0.5)


def _crop_to(t, like):
    dy, dx = (t.shape[2] - like.shape[2]) // 2, (t.shape[3] - like.shape[3]) // 2
    return t[:, :, dy:dy + like.shape[2], dx:dx + like.shape[3]]


class UNet(nn.Module):
    """Program 17: tf_unet with 3 levels, 16 root features, VALID 3x3 convolutions.

    Ends in ReLU(1x1 conv -> 2), tf_unet's pixel_wise_softmax exp(o) / sum_c exp(o)
    (broadcast instead of tf.tile) and its Dice loss.
    """

    def __init__(self, fixed, layers=3, root=16):
        super().__init__()
        self.fixed = fixed
        self.down = nn.ModuleList()
        c = 1
        for level in range(layers):
            f = 2 ** level * root
            self.down.append(nn.ModuleList([_unet_conv(c, f), _unet_conv(f, f)]))
            c = f
        self.up = nn.ModuleList()
        for level in range(layers - 2, -1, -1):
            f = 2 ** (level + 1) * root
            deconv = nn.ConvTranspose2d(f, f // 2, 2, stride=2)
            trunc_normal_(deconv.weight.data, (2.0 / (4 * (f // 2))) ** 0.5)
            nn.init.constant_(deconv.bias.data, 0.1)
            self.up.append(nn.ModuleList([deconv, _unet_conv(f, f // 2), _unet_conv(f // 2, f // 2)]))
        self.out = _unet_conv(root, 2, k=1)
        self.exp_o = Exp()
        self.div_p = Div()

    def forward(self, x, y):
        h = x.permute(0, 3, 1, 2)
        skips = []
        for i, (c1, c2) in enumerate(self.down):
            h = torch.relu(c2(torch.relu(c1(h))))
            if i < len(self.down) - 1:
                skips.append(h)
                h = F.max_pool2d(h, 2)
        for (deconv, c1, c2), skip in zip(self.up, reversed(skips)):
            h = torch.relu(deconv(h))
            h = torch.cat([_crop_to(skip, h), h], 1)
            h = torch.relu(c2(torch.relu(c1(h))))
        o = torch.relu(self.out(h))
        if self.fixed:
            e = torch.exp(o - o.max(1, keepdim=True)[0])
            p = e / e.sum(1, keepdim=True)
        else:
            e = self.exp_o(o)
            p = self.div_p(e, e.sum(1, keepdim=True))
        t = y.permute(0, 3, 1, 2)
        union = 1e-5 + p.sum() + t.sum()
        return -(2 * (p * t).sum() / union)


register(Case(
    "17", "TF1", "U-Net (tf_unet, 3 levels, 16 root features, VALID 3x3 convs, "
    "ConvTranspose 2x2 + ReLU, crop + concat, 1x1 -> 2 + ReLU) -> per-pixel "
    "exp(o)/sum_c exp(o) -> Dice loss. 92x92 input, 52x52 output.", UNet,
    [mnist("x", (1, 92, 92, 1)), onehot("y", (1, 52, 52, 2))],
    [Defect("17", "exp_o", "Exp", "exp-overflow",
            note="exp of a ReLU output above 88.7 is INF; the softmax's Div then gives INF/INF")],
    "subtract the per-pixel max before exp"))
