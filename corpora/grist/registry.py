"""The GRIST corpus registry: one Case per catalogue program.

A Case says how to build the PyTorch module (defective or fixed twin), what its graph
inputs are (shapes, ranges, how --check samples them), the weight mode, and the ground
truth. Defects name the module scope that holds the faulty op (an ops.Log/Exp/Div/Sqrt
wrapper); the exporter resolves that scope to the ONNX node name, so case.json never
carries a hand-copied node name.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

UNBOUNDED = (-50.0, 50.0)  # the stand-in for inputs the original lets drift


@dataclass
class Input:
    name: str
    shape: Tuple[int, ...]
    lo: float
    hi: float
    # How --check samples it: "uniform" (float box), "int" (integers lo..hi),
    # "onehot" (one-hot rows; the box stays [0, 1]), "values" (pick from `values`).
    sample: str = "uniform"
    values: Tuple[float, ...] = ()

    @property
    def is_int(self) -> bool:
        return self.sample == "int"


@dataclass
class Defect:
    id: str
    scope: str  # dotted module path of the wrapper holding the op, e.g. "head.log_p"
    op: str  # ONNX op type: Log, Exp, Div, Sqrt
    hazard: str
    kind: str = "forward"
    note: str = ""


@dataclass
class Case:
    program: str
    framework: str  # "TF1" or "PyTorch"
    description: str
    build: Callable[[bool], "object"]  # build(fixed) -> nn.Module
    inputs: List[Input]
    defects: List[Defect]
    fix: str
    weights: Dict = field(default_factory=lambda: {"mode": "free"})
    input_notes: str = ""
    outputs: Tuple[str, ...] = ("loss",)
    opset: int = 13
    # Constant folding would fold away computations on weights alone (28's divisions).
    fold: bool = True
    # Weights files above ~1 MB are generated on demand, never committed.
    large: bool = False


REGISTRY: Dict[str, Case] = {}


def register(case: Case) -> None:
    assert case.program not in REGISTRY, f"program {case.program} registered twice"
    REGISTRY[case.program] = case


def all_cases() -> List[Case]:
    """Every program, in catalogue order (1..63)."""
    import programs_a, programs_b, programs_c, programs_d  # noqa: F401  (they register on import)
    return [REGISTRY[k] for k in sorted(REGISTRY, key=int)]


# Shorthands used by the program files.
def mnist(name: str, shape: Tuple[int, ...]) -> Input:
    return Input(name, shape, 0.0, 1.0)


def onehot(name: str, shape: Tuple[int, ...]) -> Input:
    return Input(name, shape, 0.0, 1.0, sample="onehot")


def unbounded(name: str, shape: Tuple[int, ...]) -> Input:
    return Input(name, shape, *UNBOUNDED)


def free(lo: Optional[float] = None, hi: Optional[float] = None) -> Dict:
    """Free weights; without a range the tool derives one from the stored values."""
    return {"mode": "free"} if lo is None else {"mode": "free", "range": [lo, hi]}


FIXED = {"mode": "fixed"}


def sample_inputs(case: Case, seed: int):
    """Random graph inputs within the case's ranges (the same seed, the same tensors)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in case.inputs:
        if i.sample == "int":
            out.append(torch.randint(int(i.lo), int(i.hi) + 1, i.shape, generator=g))
        elif i.sample == "onehot":
            k = torch.randint(0, i.shape[-1], i.shape[:-1], generator=g)
            out.append(torch.nn.functional.one_hot(k, i.shape[-1]).float())
        elif i.sample == "values":
            v = torch.tensor(i.values, dtype=torch.float32)
            out.append(v[torch.randint(0, len(i.values), i.shape, generator=g)])
        else:
            out.append(i.lo + (i.hi - i.lo) * torch.rand(i.shape, generator=g))
    return out
