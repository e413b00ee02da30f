"""Frozen TensorFlow graphs converted to ONNX with tf2onnx, an optional
dependency (``pip install -r requirements-onnx.txt``): exporting.py builds
the graphs (serving_default's uint8 graph, translate's float32 one), this
module makes them convertible and converts them::

    graph_def = to_onnx.rewrite_unsupported(graph_def)   # TensorFlow alone
    model = to_onnx.convert(graph_def, ('input_images', 'output_images'))  # bytes

What tf2onnx 1.17 cannot convert in our generators, and what replaces it:

- DepthwiseConv2dNativeBackpropInput (the depthwise transposed convolution
  of ops.blur_upsample, CUT's anti-aliased upsampling): tf2onnx has no
  converter and leaves the TensorFlow op in the model, which onnxruntime
  refuses. It is rewritten as what it computes: the input with s - 1 zeros
  inserted after each row and column (stride s), padded, and a stride-1
  depthwise convolution with the filter rotated by 180 degrees, which
  tf2onnx converts to a grouped Conv (:func:`depthwise_transposed`).
- FloorMod of integers is converted with ONNX's truncating Div, wrong for a
  negative operand: exporting.pad_to rounds sizes up without one.

Reflect and symmetric (replicate) padding, the stride-2 depthwise blur of
ops.blur_downsample, instance and batch norm, transposed convolutions and
the in-graph padding's Gather all convert as they are.
"""

import importlib.util

# Opset 17 (2022): onnxruntime 1.13 and later, onnxruntime-web, and every
# op the generators need (Round 11, Pad's reflect and edge modes 11).
OPSET = 17
REQUIRED = ('tf2onnx', 'onnx')
INSTALL = 'pip install -r requirements-onnx.txt (or pip install "cyclegan-tf[onnx]")'
# TensorFlow op -> the function building its replacement (see the module's docstring).
REPLACED = {}


def missing(what='--format onnx'):
    """One line saying what to install if tf2onnx or onnx does not import; '' if both do."""
    absent = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    return f'{what} needs {" and ".join(absent)}, not installed: {INSTALL}' if absent else ''


def depthwise_transposed(op, sizes, kernel, x):
    """DepthwiseConv2dNativeBackpropInput(sizes, kernel, x) of ``op``
    (padding VALID, NHWC, channel multiplier 1) as ops tf2onnx converts:
    ``x`` [N, h, w, C] with s - 1 zeros after each row and column
    [N, h s, w s, C], padded by k - 1 before and to ``sizes`` after, then a
    stride-1 depthwise convolution with ``kernel`` rotated by 180 degrees.
    Each output is the same sum of products as the transposed convolution's
    (plus products with zeros): equal up to float rounding."""
    import tensorflow as tf

    strides, padding = list(op.get_attr('strides')), op.get_attr('padding')
    fmt = op.get_attr('data_format')
    kh, kw, _, multiplier = kernel.shape.as_list()
    s = strides[1]
    if (padding != b'VALID' or fmt != b'NHWC' or multiplier != 1 or strides[2] != s
            or min(kh, kw) < s or list(op.get_attr('dilations')) != [1, 1, 1, 1]):
        raise ValueError(f'{op.name}: only VALID, NHWC, stride s <= the kernel, multiplier 1 '
                         f'depthwise transposed convolutions are rewritten for ONNX')
    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
    spread = tf.pad(x[:, :, None, :, None, :],
                    [[0, 0], [0, 0], [0, s - 1], [0, 0], [0, s - 1], [0, 0]])
    spread = tf.reshape(spread, tf.stack([n, h * s, w * s, c]))
    padded = tf.pad(spread, tf.stack([[0, 0], [kh - 1, sizes[1] - h * s],
                                      [kw - 1, sizes[2] - w * s], [0, 0]]))
    y = tf.nn.depthwise_conv2d(padded, tf.reverse(kernel, [0, 1]), [1, 1, 1, 1], 'VALID')
    y.set_shape(op.outputs[0].shape)
    return y


REPLACED['DepthwiseConv2dNativeBackpropInput'] = depthwise_transposed


def rewrite_unsupported(graph_def, replaced=None):
    """``graph_def`` with each node of an op in ``replaced`` (default
    REPLACED: op type -> fn(op, *input tensors) -> output tensor) replaced
    by the nodes ``fn`` builds, the last one under the node's name, so that
    its consumers read it; the others under ``<name>/onnx/``. The graph
    itself when it has none."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    replaced = REPLACED if replaced is None else replaced
    if not any(node.op in replaced for node in graph_def.node):
        return graph_def
    with tf.Graph().as_default() as original:
        tf1.import_graph_def(graph_def, name='')
    result = tf1.GraphDef()
    result.versions.CopyFrom(graph_def.versions)
    result.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.op not in replaced:
            result.node.add().CopyFrom(node)
            continue
        op = original.get_operation_by_name(node.name)
        with tf.Graph().as_default() as piece:
            inputs = [tf1.placeholder(t.dtype, t.shape, name=f'input_{i}')
                      for i, t in enumerate(op.inputs)]
            tf.identity(replaced[node.op](op, *inputs), name='output')
        sources = {f'input_{i}': name for i, name in enumerate(node.input)
                   if not name.startswith('^')}
        for new in piece.as_graph_def().node:
            if new.name in sources:
                continue
            copy = result.node.add()
            copy.CopyFrom(new)
            copy.name = node.name if new.name == 'output' else f'{node.name}/onnx/{new.name}'
            del copy.input[:]
            copy.input.extend(_renamed(name, node.name, sources) for name in new.input)
            if new.name == 'output':
                copy.input.extend(name for name in node.input if name.startswith('^'))
    return result


def _renamed(name, prefix, sources):
    control, name = ('^', name[1:]) if name.startswith('^') else ('', name)
    node, colon, port = name.partition(':')
    if node in sources:  # a placeholder: its one output
        return control + sources[node]
    return f'{control}{prefix}/onnx/{node}{colon}{port}'


def convert(graph_def, names):
    """The ONNX model (bytes) of the frozen ``graph_def`` from the tensor
    ``names[0]`` (':0') to ``names[1]``, its input and output named so.
    RuntimeError (one line) if tf2onnx leaves an op it cannot convert."""
    import logging

    import onnx
    import tf2onnx

    tf2onnx.logging.set_level(logging.ERROR)  # its INFO lines on every op
    inputs, outputs = [f'{names[0]}:0'], [f'{names[1]}:0']
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=inputs, output_names=outputs, opset=OPSET,
        tensors_to_rename={inputs[0]: names[0], outputs[0]: names[1]})
    left = sorted({node.op_type for node in model.graph.node
                   if not onnx.defs.has(node.op_type, node.domain)})
    if left:
        raise RuntimeError(f'tf2onnx {tf2onnx.__version__} cannot convert the TensorFlow '
                           f'op{"s" if len(left) > 1 else ""} {", ".join(left)}')
    onnx.checker.check_model(model)
    return model.SerializeToString()
