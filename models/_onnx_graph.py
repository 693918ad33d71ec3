"""A tiny ONNX graph builder shared by the two model builders.

Both encoders are written out node by node from numpy weights (no torch, no exporter), so the
bookkeeping of unique node/tensor names and initializers lives here once instead of in two
sets of closures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnxruntime rejects newer IR versions and opset 18 is the lowest where ReduceSum/ReduceL2 take
# `axes` as an input everywhere we use them; both are fixed so builds are reproducible.
OPSET = 18
IR_VERSION = 9
MS_DOMAIN = "com.microsoft"


class GraphBuilder:
    """Accumulates nodes and initializers; every node gets a unique, readable name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._uses_ms_domain = False

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, name: str, value: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> str:
        """Add an initializer from a numpy-compatible value and return its tensor name."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        tensor_name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(arr, tensor_name))
        return tensor_name

    def const_int4(self, name: str, packed: npt.NDArray[np.uint8], dims: list[int]) -> str:
        """Add a signed INT4 initializer from bytes already packed two values per byte."""
        tensor_name = self._unique(name)
        tensor = helper.make_tensor(tensor_name, TensorProto.INT4, dims, packed.tobytes(), raw=True)
        self.initializers.append(tensor)
        return tensor_name

    def op(self, op_type: str, inputs: list[str], **options: Any) -> str:
        """Append one node (options as for ``ops``); returns its (first) output name."""
        return self.ops(op_type, inputs, **options)[0]

    def ops(
        self,
        op_type: str,
        inputs: list[str],
        *,
        output: str | None = None,
        n_outputs: int = 1,
        domain: str = "",
        **attrs: Any,
    ) -> list[str]:
        """Append one node with possibly several outputs and return all output names."""
        if output is not None:
            self._names.add(output)
            outs = [output]
        else:
            outs = [
                self._unique(f"{op_type.lower()}_{len(self.nodes)}_{k}") for k in range(n_outputs)
            ]
        if domain == MS_DOMAIN:
            self._uses_ms_domain = True
        self.nodes.append(
            helper.make_node(
                op_type,
                inputs,
                outs,
                name=self._unique(f"n{len(self.nodes)}_{op_type}"),
                domain=domain,
                **attrs,
            )
        )
        return outs

    def model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], producer: str
    ) -> onnx.ModelProto:
        """Finish the graph into a checked model at the fixed opset / IR version."""
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", OPSET)]
        if self._uses_ms_domain:
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name=producer)
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=False)
        return model


def token_inputs() -> list[onnx.ValueInfoProto]:
    """The shared input signature: both encoders take padded ids and a 0/1 mask."""
    return [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ]


def embedding_output(dim: int) -> list[onnx.ValueInfoProto]:
    """The shared output: one L2-normalised row per input."""
    return [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])]
