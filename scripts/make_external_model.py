"""Writes a model whose weights live in an external data file larger than protobuf's
2 GB limit, to check that nanguard loads and analyses such models (issue 14).

    /usr/bin/python3 scripts/make_external_model.py OUT_DIR [--tables 3] [--rows 200000]

The model: `tables` float32 embedding tables of rows x 1024 (819 MB each with the
defaults, under the loader's 1 GiB per-tensor cap), each gathered at the int64 input
`ids` [4], summed, then Log(Softmax). The tables are small (N(0, 0.02)), so the
analyzer proves the Log safe: the model is for loading and memory, not for findings.
OUT_DIR/model.onnx holds the graph; OUT_DIR/model.data the weights (2.46 GB).
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--tables", type=int, default=3)
    ap.add_argument("--rows", type=int, default=200000)
    a = ap.parse_args()
    width = 1024
    rng = np.random.default_rng(0)
    inits, nodes, total = [], [], None
    for k in range(a.tables):
        table = rng.standard_normal((a.rows, width), dtype=np.float32) * 0.02
        inits.append(numpy_helper.from_array(table, f"embedding{k}"))
        nodes.append(helper.make_node("Gather", [f"embedding{k}", "ids"], [f"row{k}"], name=f"gather{k}"))
        if total is not None:
            nodes.append(helper.make_node("Add", [total, f"row{k}"], [f"sum{k}"], name=f"add{k}"))
        total = f"sum{k}" if total is not None else f"row{k}"
    nodes.append(helper.make_node("Softmax", [total], ["probs"], name="softmax", axis=-1))
    nodes.append(helper.make_node("Log", ["probs"], ["logp"], name="log"))
    graph = helper.make_graph(nodes, "external_data", [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("logp", TensorProto.FLOAT, [4, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    os.makedirs(a.out_dir, exist_ok=True)
    onnx.save_model(model, os.path.join(a.out_dir, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.data", size_threshold=1024)


if __name__ == "__main__":
    main()
