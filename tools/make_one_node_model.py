# One ai.dysample::DySample node at the reference shape (256x120x120, x2, lp, g4), f32, for
# `dysample onnx bench` (issue 13: the op's overhead through ONNX Runtime vs `dysample bench`).
import sys
import numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
out = sys.argv[1] if len(sys.argv) > 1 else "."  # output directory
rng = np.random.default_rng(0)
C, H, W, s, g = 256, 120, 120, 2, 4
O = 2 * g * s * s
w = (rng.standard_normal((O, C, 1, 1)) * 0.001).astype(np.float32)
b = np.zeros(O, np.float32)
node = helper.make_node("DySample", ["input", "offset_weight", "offset_bias"], ["output"],
                        domain="ai.dysample", scale=s, style="lp", groups=g, dyscope=0)
graph = helper.make_graph([node], "one_dysample",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, C, H, W])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, C, H * s, W * s])],
    [numpy_helper.from_array(w, "offset_weight"), numpy_helper.from_array(b, "offset_bias")])
m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.dysample", 1)])
m.ir_version = 10
onnx.save(m, f"{out}/one.onnx")
np.save(f"{out}/x.npy", rng.standard_normal((1, C, H, W)).astype(np.float32))
