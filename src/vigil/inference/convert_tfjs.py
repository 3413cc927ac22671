"""Repair a TensorFlow.js graph model's node attributes so that tf2onnx can read it.

Run by `vigil.inference.install` inside the throwaway converter environment (which has
TensorFlow and tf2onnx but not Vigil):

    python convert_tfjs.py repair IN.json OUT.json        # the weights must sit beside OUT.json
    PYTHONHASHSEED=0 python convert_tfjs.py tf2onnx --tfjs OUT.json --output M.onnx --opset 13

It imports nothing outside the standard library at module level so that Vigil's tests can
exercise `fix_graph` without TensorFlow.

The TF.js exporter drops attributes TensorFlow requires when the graph is rebuilt: fused
convolutions lose ``TArgs`` (their extra inputs' types: one per ``num_args``), and other nodes lose
attributes that have defaults in the op's definition (``index_type`` of ``Fill``…). tf2onnx
then fails with "NodeDef missing attr 'TArgs'" or "KeyError: 'index_type'".
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Ops whose extra inputs (bias, batch-norm terms…) are typed by a TArgs list.
FUSED_OPS = frozenset({"_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"})
DEFAULT_TYPE = "DT_FLOAT"

AttrValue = dict[str, Any]  # an AttrValue in protobuf's JSON form, as TF.js writes it
OpDefaults = Mapping[str, Mapping[str, AttrValue]]  # op -> attribute -> default value


def graph_ops(model: Mapping[str, Any]) -> set[str]:
    """Every op used in the model's graph, its function library included."""
    topology = model.get("modelTopology", {})
    ops = {str(node["op"]) for node in topology.get("node", [])}
    for function in topology.get("library", {}).get("function", []):
        ops |= {str(node["op"]) for node in function.get("nodeDef", [])}
    return ops


def _nodes(model: dict[str, Any]) -> Iterable[dict[str, Any]]:
    topology = model.get("modelTopology", {})
    yield from topology.get("node", [])
    for function in topology.get("library", {}).get("function", []):
        yield from function.get("nodeDef", [])


def fix_graph(
    model: Mapping[str, Any], op_defaults: OpDefaults
) -> tuple[dict[str, Any], list[str]]:
    """A copy of the TF.js `model` (its parsed model.json) with the attributes tf2onnx needs
    filled in, and one line per node changed saying what was added.

    Fused convolutions without ``TArgs`` get the node's ``T`` (else float) repeated ``num_args``
    times; any other attribute missing from a node is taken from `op_defaults` (TensorFlow's
    op-definition defaults, see `tensorflow_op_defaults`). Attributes present are never changed.
    """
    fixed = copy.deepcopy(dict(model))
    changes: list[str] = []
    for node in _nodes(fixed):
        attrs: dict[str, AttrValue] = node.setdefault("attr", {})
        added: list[str] = []
        if node["op"] in FUSED_OPS and "TArgs" not in attrs:
            count = int(attrs.get("num_args", {}).get("i", 0))
            element_type = attrs.get("T", {}).get("type", DEFAULT_TYPE)
            attrs["TArgs"] = {"list": {"type": [element_type] * count}}
            added.append("TArgs")
        for attr, default in sorted(op_defaults.get(node["op"], {}).items()):
            if attr not in attrs:
                attrs[attr] = copy.deepcopy(dict(default))
                added.append(attr)
        if added:
            changes.append(f"{node['name']} ({node['op']}): added {', '.join(added)}")
    return fixed, changes


def tensorflow_op_defaults(ops: Iterable[str]) -> dict[str, dict[str, AttrValue]]:
    """The default attribute values of `ops` from TensorFlow's op registry, in TF.js's JSON
    form. Needs TensorFlow (the converter environment)."""
    registry = importlib.import_module("tensorflow.python.framework.op_def_registry")
    json_format = importlib.import_module("google.protobuf.json_format")
    defaults: dict[str, dict[str, AttrValue]] = {}
    for op in sorted(ops):
        op_def = registry.get(op)
        if op_def is None:
            continue
        defaults[op] = {
            attr.name: json_format.MessageToDict(attr.default_value)
            for attr in op_def.attr
            if attr.HasField("default_value")
        }
    return defaults


def deterministic_tf2onnx(argv: list[str]) -> None:
    """Run ``python -m tf2onnx.convert ARGV`` so that the same input gives the same bytes.

    tf2onnx 1.16.1's optimizers iterate over sets: of node names (ordered by Python's string
    hash: fixed by running with PYTHONHASHSEED=0) and of `Node` objects, which hash by memory
    address (varies with every run, ASLR). Which of several duplicate nodes is kept, and so the
    node names and order in the file, changed from run to run: 60 runs gave 60 different files,
    all computing bit-identical outputs. Hashing a node by its name (read-only in tf2onnx, and
    unique in a graph) makes the order depend on the graph alone.
    """
    graph_module = importlib.import_module("tf2onnx.graph")
    convert_module = importlib.import_module("tf2onnx.convert")
    graph_module.Node.__hash__ = lambda node: hash(node.name)
    sys.argv = ["tf2onnx.convert", *argv]
    convert_module.main()


def main(argv: list[str]) -> int:
    """``convert_tfjs.py repair IN.json OUT.json`` or ``convert_tfjs.py tf2onnx ARGS…``."""
    if argv[:1] == ["tf2onnx"]:
        if sys.flags.hash_randomization:
            print("run with PYTHONHASHSEED=0 (the output depends on it)", file=sys.stderr)
            return 2
        deterministic_tf2onnx(argv[1:])
        return 0
    if len(argv) != 3 or argv[0] != "repair":
        print(
            "usage: convert_tfjs.py repair IN.json OUT.json | convert_tfjs.py tf2onnx ARGS...",
            file=sys.stderr,
        )
        return 2
    source, target = Path(argv[1]), Path(argv[2])
    model = json.loads(source.read_text(encoding="utf-8"))
    fixed, changes = fix_graph(model, tensorflow_op_defaults(graph_ops(model)))
    for change in changes:
        print(change)
    print(f"{len(changes)} node(s) repaired")
    target.write_text(json.dumps(fixed), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
