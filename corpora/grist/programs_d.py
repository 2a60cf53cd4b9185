"""GRIST programs with generative or unusual models: VAE, RBM, GAN, stochastic computing.

Run-time sampling becomes a graph input: Gaussian eps/z in [-5, 5], the RBM's uniform
Bernoulli thresholds in [0, 1].
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from blocks import Div, Exp, Log, Sqrt, TFDense
from registry import Case, Defect, Input, free, mnist, onehot, register

LOG0 = "log-nonpositive"
# exp(-100) = 3.8e-44 is a float32 subnormal, not 0: the catalogue's sqrt(0) needs TF's
# flush-to-zero. -110 keeps its mechanism (exp underflows to exactly 0) in IEEE float32.
LOGVAR_MIN = -110.0


class VAE(nn.Module):
    """Programs 35, 36, 39 (nz = 20, 2, 2) and the conditional 43, 49 (nz = 2).

    784 -> 500 softplus -> 500 softplus -> (mu, logvar)[nz]; z = mu + sqrt(exp(clip(
    logvar))) * eps; z -> 500 softplus -> 500 softplus -> 784 sigmoid; loss = mean over
    rows of the Bernoulli NLL -sum(x log(1e-10 + xhat) + (1-x) log(1e-10 + 1 - xhat))
    plus the KL term. Python folds 1e-10 + 1 to 1.0000000001, which float32 rounds to 1:
    the graph holds log(1 - xhat), as the TF program's did (35a).
    The twin: z = mu + exp(0.5 logvar) eps and log(clip(., 1e-6, 1)); its logvar clip
    is narrowed to [-20, 20] because nz * exp(87) already overflows the KL sum.
    """

    def __init__(self, fixed, nz, cond=False):
        super().__init__()
        self.fixed, self.cond = fixed, cond
        c = 10 if cond else 0
        self.enc1 = TFDense(784 + c, 500, init="xavier", bias=0.0)
        self.enc2 = TFDense(500, 500, init="xavier", bias=0.0)
        self.mu = TFDense(500, nz, init="xavier", bias=0.0)
        self.logvar = TFDense(500, nz, init="xavier", bias=0.0)
        self.dec1 = TFDense(nz + c, 500, init="xavier", bias=0.0)
        self.dec2 = TFDense(500, 500, init="xavier", bias=0.0)
        self.out = TFDense(500, 784, init="xavier", bias=0.0)
        self.sqrt_std = Sqrt()
        self.log_x = Log()
        self.log_1mx = Log()

    def forward(self, x, *rest):
        y, eps = rest if self.cond else (None, rest[0])
        h = torch.cat([x, y], 1) if self.cond else x
        h = F.softplus(self.enc2(F.softplus(self.enc1(h))))
        mu, lv = self.mu(h), self.logvar(h)
        if self.fixed:
            lv = torch.clamp(lv, -20.0, 20.0)
            z = mu + torch.exp(0.5 * lv) * eps
        else:
            lv = torch.clamp(lv, LOGVAR_MIN, 87.0)
            z = mu + self.sqrt_std(torch.exp(lv)) * eps
        if self.cond:
            z = torch.cat([z, y], 1)
        xhat = torch.sigmoid(self.out(F.softplus(self.dec2(F.softplus(self.dec1(z))))))
        if self.fixed:
            rec = x * torch.log(torch.clamp(xhat, 1e-6, 1.0)) + \
                (1 - x) * torch.log(torch.clamp(1 - xhat, 1e-6, 1.0))
        else:
            rec = x * self.log_x(1e-10 + xhat) + (1 - x) * self.log_1mx(1e-10 + 1 - xhat)
        kl = -0.5 * torch.sum(1 + lv - mu * mu - torch.exp(lv), 1)
        return torch.mean(-torch.sum(rec, 1) + kl)


def vae_case(pid, nz, cond, a, b):
    inputs = [mnist("x", (100, 784))] + ([onehot("y", (100, 10))] if cond else []) + \
        [Input("eps", (100, nz), -5.0, 5.0)]
    kind = "Conditional VAE (concat(x, y) into the encoder, concat(z, y) into the decoder)" \
        if cond else "VAE"
    register(Case(
        pid, "TF1", f"{kind}, nz = {nz}: 784 -> 500 Softplus -> 500 Softplus -> (mu, logvar) "
        f"-> z = mu + sqrt(exp(clip(logvar, {LOGVAR_MIN:g}, 87))) * eps -> 500 Softplus -> "
        "500 Softplus -> 784 Sigmoid; Bernoulli NLL + KL. Xavier weights, zero biases.",
        lambda fixed: VAE(fixed, nz, cond), inputs,
        [Defect(a, "log_1mx", "Log", LOG0,
                note="log(1e-10 + 1 - xhat): 1e-10 + 1 rounds to 1 in float32, so the guard "
                "vanishes once the sigmoid saturates to 1"),
         Defect(b, "sqrt_std", "Sqrt", "sqrt-zero-gradient", kind="gradient",
                note="exp(logvar) underflows to 0: sqrt(0) = 0 is finite, its derivative is "
                "infinite. Clip lower bound -110 instead of the catalogue's -100 (see README)")],
        "log(clip(xhat, 1e-6, 1)), log(clip(1 - xhat, 1e-6, 1)); z = mu + exp(0.5 logvar) "
        "eps with logvar clipped to [-20, 20]",
        input_notes="eps ~ N(0,1) sampled at run time: a graph input, [-5, 5] used; "
        + ("y one-hot; " if cond else "") + "x MNIST pixels in [0,1]"))


vae_case("35", 20, False, "35a", "35b")
vae_case("36", 2, False, "36a", "36b")
vae_case("39", 2, False, "39a", "39b")
vae_case("43", 2, True, "43a", "43b")
vae_case("49", 2, True, "49a", "49b")


class FreeEnergy(nn.Module):
    """F(v) = -v.b_v - sum(log(1 + exp(W v + b_h))); the twin uses softplus."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.exp_wxb = Exp()

    def forward(self, v, W, v_bias, h_bias):
        wx_b = F.linear(v, W, h_bias)
        hidden = F.softplus(wx_b) if self.fixed else torch.log(self.exp_wxb(wx_b) + 1)
        return (-hidden.sum(1) - torch.mv(v, v_bias)).mean()


class RBM(nn.Module):
    """Programs 22, 51, 62, 63: RBM 784 <-> 500, CD-1, loss F(v) - F(v_1).

    Bernoulli sampling relu(sign(p - U[0,1))) takes its uniforms from graph inputs.
    """

    def __init__(self, fixed):
        super().__init__()
        self.W = nn.Parameter(torch.randn(500, 784) * 1e-2)
        self.v_bias = nn.Parameter(torch.zeros(784))
        self.h_bias = nn.Parameter(torch.zeros(500))
        self.fe_data = FreeEnergy(fixed)
        self.fe_model = FreeEnergy(fixed)

    def forward(self, v, noise_h, noise_v):
        p_h = torch.sigmoid(F.linear(v, self.W, self.h_bias))
        h = F.relu(torch.sign(p_h - noise_h))
        p_v = torch.sigmoid(F.linear(h, self.W.t(), self.v_bias))
        v1 = F.relu(torch.sign(p_v - noise_v))
        return self.fe_data(v, self.W, self.v_bias, self.h_bias) - \
            self.fe_model(v1, self.W, self.v_bias, self.h_bias)


for pid, how in (("22", "wx_b.exp().add(1).log()"), ("51", "wx_b.exp().add(1).log()"),
                 ("62", "log(exp(wx_b) + 1)"), ("63", "wx_b.exp().add(1).log()")):
    register(Case(
        pid, "PyTorch", f"RBM 784 <-> 500, CD-1 with Bernoulli sampling; free energy with "
        f"the hand-written softplus {how}; loss F(v) - F(v_1). W ~ 0.01 randn, zero biases.",
        RBM, [mnist("v", (64, 784)), Input("noise_h", (64, 500), 0.0, 1.0),
              Input("noise_v", (64, 784), 0.0, 1.0)],
        [Defect(pid, "fe_data.exp_wxb", "Exp", "exp-overflow",
                note="exp(Wv + b_h) overflows, F(v) = -inf and F(v) - F(v_1) = inf - inf; "
                "the same source line runs again on the sample (fe_model.exp_wxb)")],
        "hand-written softplus -> F.softplus",
        input_notes="noise_h, noise_v: the U[0,1) draws of torch.rand in the Bernoulli "
        "sampling, made graph inputs"))


class GAN(nn.Module):
    """Program 31: MLP GAN; D's loss takes log(D(x)) without the eps its other logs have."""

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        g = [100, 256, 512, 1024, 784]
        d = [784, 1024, 512, 256, 1]
        self.G = nn.ModuleList(TFDense(a, b, init="xavier", bias=0.0) for a, b in zip(g, g[1:]))
        self.D = nn.ModuleList(TFDense(a, b, init="xavier", bias=0.0) for a, b in zip(d, d[1:]))
        self.drop = nn.Dropout(0.7)
        self.log_real = Log()

    def generate(self, z):
        for fc in self.G[:-1]:
            z = torch.relu(fc(z))
        return torch.tanh(self.G[-1](z))

    def discriminate(self, x):
        for fc in self.D[:-1]:
            x = self.drop(torch.relu(fc(x)))
        return torch.sigmoid(self.D[-1](x))

    def forward(self, x, z):
        d_real, d_fake = self.discriminate(x), self.discriminate(self.generate(z))
        log_real = torch.log(d_real + 1e-8) if self.fixed else self.log_real(d_real)
        d_loss = -torch.mean(log_real + torch.log(1 - d_fake + 1e-8))
        g_loss = -torch.mean(torch.log(d_fake + 1e-8))
        return d_loss, g_loss


register(Case(
    "31", "TF1", "GAN. G: z100 -> 256 -> 512 -> 1024 ReLU -> 784 tanh. D: 784 -> 1024 -> "
    "512 -> 256 ReLU + Dropout(keep 0.3) -> 1 Sigmoid. d_loss = -mean(log D(x) + log(1 - "
    "D(G(z)) + 1e-8)), g_loss = -mean(log(D(G(z)) + 1e-8)). Xavier weights, zero biases.",
    GAN, [Input("x", (100, 784), -1.0, 1.0), Input("z", (100, 100), -5.0, 5.0)],
    [Defect("31", "log_real", "Log", LOG0, note="log(D(x)) without eps")],
    "log(D(x)) -> log(D(x) + 1e-8)", outputs=("d_loss", "g_loss"),
    input_notes="z ~ N(0,1) sampled at run time: a graph input, [-5, 5] used"))


class SCMLP(nn.Module):
    """Program 28: stochastic-computing MLP 784 -> 128 -> 10 (a reconstruction).

    sc_matmul: clip(x @ W / colsum(|W|) * gain, -1, 1); the layer's scale is tracked as
    scale / (gain + 1e-7); sc_add: clip((z + b / S) / 2, -1, 1); the output layer's
    logits are rescaled by scale / gain2 (gain2[1]) before a stable softmax CE, plus an L2
    regulariser. The four divisions are the catalogue's 28a-d; there are no others.
    The twin clamps each denominator to >= 1e-7. Exported without constant folding:
    the divisions read weights only and would otherwise be folded into initializers.
    """

    def __init__(self, fixed):
        super().__init__()
        self.fixed = fixed
        self.W1 = TFDense(784, 128, bias=None)
        self.gain1 = nn.Parameter(torch.rand(128) * 16)
        self.b1 = nn.Parameter(torch.zeros(128))
        self.S = nn.Parameter(torch.ones(1))
        self.scale = nn.Parameter(torch.ones(1))
        self.W2 = TFDense(128, 10, bias=None)
        self.gain2 = nn.Parameter(torch.ones(1))
        self.div_scale1, self.div_colsum, self.div_scale2, self.div_bias = Div(), Div(), Div(), Div()

    def denom(self, d):
        return torch.clamp(d, min=1e-7) if self.fixed else d

    def forward(self, x, y):
        colsum = torch.abs(self.W1.weight).sum(0)
        z1 = torch.clamp(self.div_colsum(self.W1(x), self.denom(colsum)) * self.gain1, -1, 1)
        s1 = self.div_scale1(self.scale, self.denom(self.gain1 + 1e-7))
        h1 = torch.clamp((z1 + self.div_bias(self.b1, self.denom(self.S))) / 2, -1, 1)
        logits = self.W2(h1) * self.div_scale2(s1.mean(), self.denom(self.gain2))
        ce = -(y * F.log_softmax(logits, 1)).sum(1).mean()
        return ce + 1e-4 * ((self.W1.weight ** 2).sum() + (self.W2.weight ** 2).sum())


register(Case(
    "28", "TF1", "Stochastic-computing MLP 784 -> 128 -> 10 (reconstructed from the "
    "catalogue's description; the original code is not reproduced line by line): "
    "sc_matmul clip(x @ W1 / colsum(|W1|) * gain1, +-1), scale / (gain1 + 1e-7), sc_add "
    "clip((z + b1 / S) / 2, +-1), logits * (scale / gain2) -> softmax CE + L2. The divisors "
    "are parameters, so weights are free in [-16, 16] (gain's domain is [0, 16]).",
    SCMLP, [mnist("x", (500, 784)), onehot("y", (500, 10))],
    [Defect("28a", "div_scale1", "Div", "div-by-zero", note="scale / (gain1 + 1e-7), gain1[128]"),
     Defect("28b", "div_colsum", "Div", "div-by-zero", note="y / colsum(abs(W1))"),
     Defect("28c", "div_scale2", "Div", "div-by-zero", note="scale / gain2, gain2[1]"),
     Defect("28d", "div_bias", "Div", "div-by-zero", note="y / S (the bias scaled by S)")],
    "clamp every denominator to >= 1e-7", weights=free(-16.0, 16.0), fold=False))
