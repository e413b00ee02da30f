"""A trained run's generators exported for use outside this project: a
SavedModel per direction (TF Serving, ``tf.saved_model.load``), and on
request a frozen GraphDef (TF1), a TFLite model and ONNX models (to_onnx.py). export.py is the
command; tests and tools call the two steps here::

    plan = exporting.plan(config.ExportConfig(run='runs/horse2zebra'))  # checks, no TF
    exporting.export(plan)                                               # writes plan.export_dir

What is exported for a direction (an input domain of the model's
TRANSLATIONS): the model's own inference graph (``build_inference``, rebuilt
from the run's config.json) restored from the checkpoint and frozen, that
is its variables made constants and only the subgraph from the input to the
translation kept (TRANSLATIONS: colorization's includes L + ab -> RGB; its
variables must all be those of the network GENERATORS names). Around it, in
the graph, what sample.py does in Python::

    uint8 [N, H, W, 1..4] -> RGB (grey repeated, alpha dropped, as PIL's convert('RGB'))
      -> the model's input (pipeline.model_input: the luma of training for a 1-channel
         model, Lab's L / 50 - 1 for colorization) -> reflected at the bottom and
         right to the networks' multiple (pad_to, as inference.pad_to)
      -> generator -> cropped back -> uint8 (to_uint8: rounded and clipped, as pipeline.to_uint8)

The frozen generator is a graph function called by every signature, so its
weights are stored once; they are constants of the graph, and variables/ is
empty: an export serves, the run trains.

Layout: ``DIR/AtoB/`` and ``DIR/BtoA/``, or ``DIR`` itself when one
direction is exported; each holds saved_model.pb, variables/ and assets/
(config.json, export.json) of the SavedModel, then frozen_graph.pb and
model.tflite, model.onnx and model_float.onnx when asked, and config.json and export.json (what was
exported: model, direction, generator, checkpoint, step, mode, tensor names,
sizes). Everything is written into a temporary folder beside DIR, renamed
into place when complete.
"""

import dataclasses
import json
import os
import shutil
import tempfile

from cyclegan_tf import config, registry
from cyclegan_tf.interop import to_onnx
from cyclegan_tf.running import checkpoints, runs, session

FORMATS = ('saved_model', 'frozen_graph', 'tflite', 'onnx')
DIRECTIONS = {'A': 'AtoB', 'B': 'BtoA'}
EXPORT_FILE = 'export.json'
SAVED_MODEL_TAG = 'serve'
# Signature name -> (input name, output name). The inputs and outputs of
# translate_encoded end in _bytes: TF Serving's REST API carries such
# string tensors as {"b64": ...} both ways.
SIGNATURES = {'serving_default': ('images', 'images'),
              'translate': ('images', 'images'),
              'translate_encoded': ('images_bytes', 'images_bytes')}
# Tensor names in every exported graph (the frozen graph and TFLite have the first pair only).
TENSORS = {'serving_default': ('input_images', 'output_images'),
           'translate': ('input_float', 'output_float'),
           'translate_encoded': ('input_bytes', 'output_bytes')}
# --format onnx: one file per graph, each self-contained (its weights inside), as
# onnxruntime-web, mobile runtimes and Netron want a model: an ONNX graph's inputs
# must all be fed, so the two graphs in one model would each need a dummy input.
ONNX_FILES = {'serving_default': 'model.onnx', 'translate': 'model_float.onnx'}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What export() writes: checked by plan() before TensorFlow loads."""

    run_dir: str
    cfg: config.Config
    checkpoint: str  # '' for the run's latest
    direction: str  # 'AtoB', 'BtoA' or 'both'
    export_dir: str
    formats: tuple
    tflite_size: tuple  # (height, width), or None for any size
    onnx_size: tuple  # (height, width), or None for any size
    train_mode: bool
    imported: tuple  # the networks of imported.json, or None
    max_pixels: int = config.MAX_PIXELS  # the SavedModel's signatures refuse larger images


def plan(ecfg):
    """The Plan of the ExportConfig ``ecfg``; RunError or ConfigError (one
    line) for a run, checkpoint, format or folder that cannot be used."""
    run_dir, checkpoint = runs.locate(ecfg.run, ecfg.checkpoint, best=ecfg.best)
    cfg = runs.load_config(run_dir)
    if not registry.of(cfg).images:
        raise runs.RunError(f'a {cfg.model} run translates no images: there is no generator '
                            f'of images to export')
    formats = parse_formats(ecfg.format)
    if 'onnx' in formats and to_onnx.missing():
        raise runs.RunError(to_onnx.missing())
    size = parse_size(ecfg.tflite_size)
    onnx_size = parse_size(ecfg.onnx_size, '--onnx_size')
    export_dir = ecfg.export_dir or os.path.join(run_dir, 'export')
    check_export_dir(export_dir, ecfg.overwrite)
    return Plan(run_dir=run_dir, cfg=cfg, checkpoint=checkpoint or '', direction=ecfg.direction,
                export_dir=export_dir, formats=formats, tflite_size=size, onnx_size=onnx_size,
                train_mode=ecfg.train_mode, imported=_tuple(runs.imported_networks(run_dir)),
                max_pixels=ecfg.max_pixels)


def _tuple(networks):
    return None if networks is None else tuple(networks)


def parse_formats(text):
    formats = tuple(dict.fromkeys(f.strip() for f in text.split(',') if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise config.ConfigError(f'--format takes {", ".join(FORMATS)} (comma-separated), '
                                 f'got {text!r}')
    return formats


def parse_size(text, flag='--tflite_size'):
    """(height, width) of ``flag``'s value ``text``: 'HxW' or 'N'; None for ''."""
    if not text:
        return None
    parts = text.lower().split('x')
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise config.ConfigError(f'{flag} is HxW or N (pixels), got {text!r}')
    return (sizes[0], sizes[-1])


def is_export(path):
    """Whether the folder ``path`` holds an export of this module."""
    return any(os.path.isfile(os.path.join(path, *sub, EXPORT_FILE))
               for sub in ((), ('AtoB',), ('BtoA',)))


def check_export_dir(path, overwrite):
    """RunError unless ``path`` can be written: new, empty, or (with
    ``overwrite``) a previous export; and the nearest existing folder above
    it writable."""
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise runs.RunError(f'the export folder {path} exists and is not a folder')
        if os.listdir(path):
            if not overwrite:
                raise runs.RunError(f'the export folder {path} exists: give --overwrite to '
                                    f'replace it, or another --export_dir')
            if not is_export(path):
                raise runs.RunError(f'{path} is not an export of export.py (it has no '
                                    f'{EXPORT_FILE}): --overwrite replaces only those')
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise runs.RunError(f'cannot write the export folder {path}: {above} is not a folder')
    if not os.access(above, os.W_OK | os.X_OK):
        raise runs.RunError(f'cannot write the export folder {path}: {above} is not writable')


def directions(roles, plan, step):
    """The input keys to export ('A', 'B'), of the model class ``roles``.
    An imported run's checkpoint as imported (``step`` 0) exports only the
    directions whose generator was imported: the others hold random weights."""
    keys = tuple(roles.TRANSLATIONS)
    if plan.direction != 'both':
        key = plan.direction[0]
        if key not in keys:
            raise runs.RunError(f'a {plan.cfg.model} model translates from '
                                f'{" and ".join(keys)} only: it has no {plan.direction}')
        keys = (key,)
    if plan.imported is not None and step == 0:
        missing = [k for k in keys if roles.GENERATORS[k] not in plan.imported]
        if missing and (plan.direction != 'both' or len(missing) == len(keys)):
            key = missing[0]
            raise runs.RunError(
                f'{plan.run_dir} holds imported weights of {", ".join(plan.imported)} only: '
                f'its {DIRECTIONS[key]} generator {roles.GENERATORS[key]} is untrained')
        keys = tuple(k for k in keys if k not in missing)
    return keys


# ----------------------------------------------------------------- graph


@dataclasses.dataclass(frozen=True)
class Generator:
    """A frozen translation: ``graph_def`` maps the tensor ``input_name``
    (float32 [N, H, W, in_channels], the model's input, H and W padded to
    its sizes) to ``output_name`` (float32 [N, H, W, out_channels] in [-1, 1])."""

    graph_def: object
    input_name: str
    output_name: str
    in_channels: int
    out_channels: int
    network: str  # the GENERATORS name, e.g. 'G_A'
    layout: str  # the model's data layout (registry.Spec.data)
    multiple: int
    min_size: int


def freeze_generators(cfg, checkpoint, keys, *, training=False):
    """{key: the Generator translating ``key``} of the run config ``cfg``,
    frozen with the weights of ``checkpoint``: the model's inference graph
    is built and restored once, each translation frozen from it.
    ``training`` as build_inference's."""
    tf = session.graph_mode()
    tf1 = tf.compat.v1
    spec = registry.of(cfg)
    roles = spec.model_class
    with tf.Graph().as_default() as graph:
        inputs, outputs = roles.build_inference(cfg, training=training)
        ends, variables = {}, []
        for key in keys:
            x, y = inputs[key], outputs[roles.TRANSLATIONS[key]]
            kept = {node.name for node in tf1.graph_util.extract_sub_graph(
                graph.as_graph_def(), [y.op.name]).node}
            own = [v for v in tf1.global_variables() if v.op.name in kept]
            scope = roles.GENERATORS[key] + '/'
            if not own or any(not v.op.name.startswith(scope) for v in own):
                raise AssertionError(f'{roles.__name__}.TRANSLATIONS[{key!r}] must depend on the '
                                     f'variables of GENERATORS[{key!r}] = {scope[:-1]!r} alone')
            ends[key] = x, y
            variables += own
        saver = tf1.train.Saver(variables)
    graph.finalize()
    multiple, min_size = roles.input_sizes(cfg)
    generators = {}
    with tf1.Session(graph=graph, config=session.session_config(training=False)) as sess:
        checkpoints.restore_checkpoint(sess, saver, variables, checkpoint)
        for key, (x, y) in ends.items():
            frozen = tf1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [y.op.name])
            generators[key] = Generator(frozen, x.name, y.name, int(x.shape[-1]),
                                        int(y.shape[-1]), roles.GENERATORS[key], spec.data,
                                        multiple, min_size)
    return generators


def reflect_indices(size, target):
    """int32 [target]: for each row (or column) of an image of ``size`` rows
    reflected to ``target`` rows, the row of the image it copies.

    inference.pad_to reflects at the end, and reflects the result again
    while it is too short (a 1-row image is repeated): the sequence of rows
    0, 1, ..., size-1, size-2, ..., 1, 0, 1, ... with period 2 (size - 1),
    written here in closed form so that one gather pads any size.
    """
    import tensorflow as tf

    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(target), period)
    return tf.minimum(index, period - index)


def pad_to(images, multiple, minimum=1):
    """``images`` [N, H, W, C] reflected at the bottom and right to heights
    and widths that are multiples of ``multiple`` and at least ``minimum``:
    inference.pad_to in the graph, for any size (an image smaller than its
    padding is mirrored again, as there)."""
    import tensorflow as tf

    for axis in (1, 2):
        size = tf.shape(images)[axis]
        target = tf.maximum(size, minimum)
        # Rounded up with a division of positive numbers: tf2onnx converts
        # FloorMod of integers with ONNX's truncating Div, wrong for -target.
        target = (target + multiple - 1) // multiple * multiple
        images = tf.gather(images, reflect_indices(size, target), axis=axis)
    return images


def to_uint8(images):
    """uint8 of float images in [-1, 1], rounded (half to even, as numpy)
    and clipped: pipeline.to_uint8 in the graph."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def to_rgb(images):
    """float32 [N, H, W, 3] of values 0..255 from uint8 images of 1 (grey),
    2 (grey, alpha), 3 (RGB) or 4 (RGBA) channels: grey repeated, alpha
    dropped, as PIL's convert('RGB') (Translator.translate) and the decoders
    of training (channels=3) read them."""
    import tensorflow as tf

    channels = images.shape[-1]
    if channels is not None:
        if not 1 <= channels <= 4:
            raise ValueError(f'images have 1 to 4 channels, not {channels}')
        index = [0, 0, 0] if channels < 3 else [0, 1, 2]
    else:
        channels = tf.shape(images)[-1]
        check = tf.debugging.Assert(
            (channels >= 1) & (channels <= 4),
            ['images have 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) channels, not',
             channels])
        with tf.control_dependencies([check]):
            index = tf.where(channels < 3, [0, 0, 0], [0, 1, 2])
    return tf.gather(tf.cast(images, tf.float32), index, axis=-1)


def decode(contents):
    """uint8 [H, W, 3] of an encoded image (string scalar), as training
    decodes files (pipeline.decode): JPEG with the accurate integer DCT; PNG,
    GIF (its first frame) and BMP by decode_image; grey repeated, alpha dropped."""
    import tensorflow as tf

    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method='INTEGER_ACCURATE'),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def header_size(contents):
    """int64 [2], the height and width of an encoded image (string scalar)
    read from its header, nothing decoded: JPEG by extract_jpeg_shape, PNG
    from IHDR (big-endian width, height at bytes 16-23), GIF its logical
    screen (little-endian 16-bit width, height at bytes 6-9), BMP (32-bit
    at bytes 18-25, a negative height top-down); [0, 0] for other files,
    which decode() then refuses. A header cut short is an
    InvalidArgumentError."""
    import tensorflow as tf

    def number(offset, length, *, big_endian):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, offset, length), tf.uint8),
                      tf.int64)
        raw = tf.reshape(raw, [length])  # a header cut short fails here
        weights = tf.constant([256 ** i for i in range(length)], tf.int64)
        return tf.reduce_sum(raw * (weights[::-1] if big_endian else weights))

    def bmp():
        height = number(22, 4, big_endian=False)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # top-down rows
        return tf.stack([height, number(18, 4, big_endian=False)])

    start = tf.strings.substr(contents, 0, 8)
    formats = [
        (tf.io.is_jpeg(contents),
         lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)),
        (tf.equal(start, PNG_SIGNATURE), lambda: tf.stack(
            [number(20, 4, big_endian=True), number(16, 4, big_endian=True)])),
        (tf.equal(tf.strings.substr(start, 0, 3), b'GIF'), lambda: tf.stack(
            [number(8, 2, big_endian=False), number(6, 2, big_endian=False)])),
        (tf.equal(tf.strings.substr(start, 0, 2), b'BM'), bmp)]
    size = tf.zeros([2], tf.int64)
    for condition, read in reversed(formats):
        size = tf.cond(condition, read, lambda size=size: size)
    return size


def pixel_check(height, width, max_pixels):
    """An op that fails with an InvalidArgumentError, which the client of a
    SavedModel receives, when ``height`` x ``width`` is above ``max_pixels``."""
    import tensorflow as tf

    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        height * width <= max_pixels,
        [f'the image is above the limit of this export, {max_pixels} pixels (export.py '
         f'--max_pixels); its height and width:', height, width], name='max_pixels')


class Serving:
    """The translations of a Generator as tensors, built in the default
    graph around ``apply`` (float32 model input, padded -> output); with
    ``max_pixels``, images of more pixels are refused before anything large
    is computed (translate_encoded: before they are decoded)."""

    def __init__(self, generator, apply, max_pixels=None):
        self.generator, self.apply, self.max_pixels = generator, apply, max_pixels

    def limited(self, images, size=None):
        """``images`` once their ``size`` (default: their shape's [1:3]) is checked."""
        import tensorflow as tf

        if self.max_pixels is None:
            return images
        size = tf.shape(images)[1:3] if size is None else size
        with tf.control_dependencies([pixel_check(size[0], size[1], self.max_pixels)]):
            return tf.identity(images)

    def translate(self, images):
        """float32 [N, H, W, in_channels] (the model's input, in [-1, 1]) ->
        float32 [N, H, W, out_channels] in [-1, 1]: padded, translated, cropped."""
        import tensorflow as tf

        g = self.generator
        images = self.limited(images)
        size = tf.shape(images)[1:3]
        translated = self.apply(pad_to(images, g.multiple, g.min_size))
        return translated[:, :size[0], :size[1]]

    def translate_uint8(self, images):
        """uint8 [N, H, W, 1..4] -> uint8 [N, H, W, out_channels], as sample.py writes it."""
        from cyclegan_tf.data import pipeline

        g = self.generator
        rgb = to_rgb(self.limited(images))
        return to_uint8(self.translate(pipeline.model_input(rgb, g.layout, g.in_channels)))

    def translate_encoded(self, contents):
        """string [N] of encoded images (sizes may differ) -> string [N] of PNGs."""
        import tensorflow as tf

        @tf.autograph.experimental.do_not_convert  # plain graph code, as data.py's
        def one(content):
            if self.max_pixels is not None:
                content = self.limited(content, header_size(content))
            return tf.io.encode_png(self.translate_uint8(decode(content)[None])[0])

        return tf.map_fn(one, contents, fn_output_signature=tf.TensorSpec([], tf.string))

    def build(self, names, *, input_shape=None):
        """{signature: (input, output)} for the signature ``names``, their
        tensors named as TENSORS; ``input_shape`` fixes the input of
        serving_default and translate."""
        import tensorflow as tf

        tf1 = tf.compat.v1
        g = self.generator
        placeholders = {
            'serving_default': (tf.uint8, [None, None, None, None],
                                self.translate_uint8),
            'translate': (tf.float32, [None, None, None, g.in_channels], self.translate),
            'translate_encoded': (tf.string, [None], self.translate_encoded)}
        result = {}
        for name in names:
            dtype, shape, fn = placeholders[name]
            shape = input_shape if input_shape and name != 'translate_encoded' else shape
            input_name, output_name = TENSORS[name]
            x = tf1.placeholder(dtype, shape, name=input_name)
            result[name] = (x, tf.identity(fn(x), name=output_name))
        return result


def inline(generator):
    """``apply`` of a Serving that imports the frozen generator where it is
    called (the frozen graph and TFLite: one call, a flat graph)."""
    import tensorflow as tf

    def apply(images):
        return tf.graph_util.import_graph_def(
            generator.graph_def, input_map={generator.input_name: images},
            return_elements=[generator.output_name], name='generator')[0]

    return apply


def as_function(generator):
    """``apply`` of a Serving that calls one graph function holding the
    frozen generator (the SavedModel: three signatures, its weights once)."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, None, None, generator.in_channels], tf.float32)
    return tf.function(inline(generator), input_signature=[spec], autograph=False)


# ---------------------------------------------------------------- writing


def write_saved_model(folder, generator, files, *, max_pixels=config.MAX_PIXELS):
    """The SavedModel of ``generator`` in the empty folder ``folder``, with
    the signatures of SIGNATURES and the files ``files`` (name -> text) as
    assets, also left at the top of ``folder``."""
    tf = session.graph_mode()
    tf1 = tf.compat.v1
    builder = tf1.saved_model.Builder(folder)  # before the files: it wants an empty folder
    for name, text in files.items():
        _write_text(os.path.join(folder, name), text)
    with tf.Graph().as_default() as graph:
        tensors = Serving(generator, as_function(generator), max_pixels).build(SIGNATURES)
        signatures = {
            name: tf1.saved_model.predict_signature_def({SIGNATURES[name][0]: x},
                                                        {SIGNATURES[name][1]: y})
            for name, (x, y) in tensors.items()}
        with tf.name_scope('assets'):
            assets = [tf.constant(os.path.join(folder, name), name=name.replace('.', '_'))
                      for name in files]
        for asset in assets:
            tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS, asset)
        with tf1.Session(graph=graph, config=session.session_config(training=False)) as sess:
            builder.add_meta_graph_and_variables(sess, [SAVED_MODEL_TAG],
                                                 signature_def_map=signatures,
                                                 assets_collection=assets, clear_devices=True)
    builder.save()


def frozen_graph_def(generator, signature='serving_default', *, input_shape=None):
    """(GraphDef, graph) of ``signature`` alone, flat: its TENSORS (by default
    input_images:0 -> output_images:0), every weight a constant."""
    tf = session.graph_mode()
    with tf.Graph().as_default() as graph:
        x, y = Serving(generator, inline(generator)).build(
            [signature], input_shape=input_shape)[signature]
    return tf.compat.v1.graph_util.extract_sub_graph(graph.as_graph_def(), [y.op.name]), graph


def write_frozen_graph(path, generator):
    graph_def, _ = frozen_graph_def(generator)
    with open(path, 'wb') as f:
        f.write(graph_def.SerializeToString())


def runtime_shape(generator, size):
    """The input shape of model.tflite and the ONNX models: [1, height,
    width, in_channels] of ``size``, or any batch and size ([-1, -1, -1,
    in_channels]) for None."""
    return [1, *size, generator.in_channels] if size else [-1, -1, -1, generator.in_channels]


# A TFLite tensor counts its elements, and the kernels index them, in 32-bit
# ints: a generator whose largest tensor would have more elements cannot run
# (and the converter crashed on such sizes, SIGSEGV, leaving nothing to say
# why). check_tflite_size refuses those sizes before converting.
TFLITE_MAX_ELEMENTS = 2 ** 31 - 1

# The converter runs in a child process of only TensorFlow, so that a crash
# of its native code is one line here: argv graph.pb model.tflite input output.
TFLITE_CHILD = r"""
import sys
import tensorflow as tf
tf1 = tf.compat.v1
tf1.disable_eager_execution()
with open(sys.argv[1], 'rb') as f:
    graph_def = tf1.GraphDef.FromString(f.read())
with tf.Graph().as_default() as graph:
    tf.graph_util.import_graph_def(graph_def, name='')
    x, y = (graph.get_tensor_by_name(name) for name in sys.argv[3:5])
    with tf1.Session(graph=graph) as sess:
        try:
            model = tf1.lite.TFLiteConverter.from_session(sess, [x], [y]).convert()
        except Exception as e:  # the converter's errors have no common class
            print(' '.join(str(e).split())[:300] or type(e).__name__, file=sys.stderr)
            sys.exit(3)
with open(sys.argv[2], 'wb') as f:
    f.write(model)
"""


def padded_size(generator, height, width):
    """(height, width) that pad_to gives an image of ``height`` x ``width``."""
    def pad(n):
        n = max(n, generator.min_size)
        return n + (-n) % generator.multiple

    return pad(height), pad(width)


def largest_tensor(generator, height, width):
    """(elements, op name) of the largest tensor of ``generator`` on one
    image of ``height`` x ``width`` (padded as pad_to does): the shapes
    inferred by building its graph, nothing run."""
    tf = session.graph_mode()
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        x = tf1.placeholder(tf.float32, [1, *padded_size(generator, height, width),
                                         generator.in_channels])
        tf.graph_util.import_graph_def(generator.graph_def, input_map={generator.input_name: x},
                                       name='generator')
    sizes = [(t.shape.num_elements(), op.name) for op in graph.get_operations()
             for t in op.outputs if t.shape.is_fully_defined()]
    return max(sizes)


def check_tflite_size(generator, size):
    """RunError, naming the largest square size that fits, when the fixed
    TFLite ``size`` (height, width) needs a tensor above TFLITE_MAX_ELEMENTS."""
    import math

    elements, _ = largest_tensor(generator, *size)
    if elements <= TFLITE_MAX_ELEMENTS:
        return
    per_pixel = elements / math.prod(padded_size(generator, *size))
    side = int(math.sqrt(TFLITE_MAX_ELEMENTS / per_pixel)) // generator.multiple
    side *= generator.multiple
    while side > generator.multiple and largest_tensor(generator, side, side)[0] > \
            TFLITE_MAX_ELEMENTS:
        side -= generator.multiple
    raise runs.RunError(f'--tflite_size {size[0]}x{size[1]}: the generator\'s largest tensor '
                        f'would have {elements:,} elements; TFLite takes at most '
                        f'{TFLITE_MAX_ELEMENTS:,}: give a smaller size, at most {side}x{side}')


def write_tflite(path, generator, size):
    """model.tflite: serving_default, uint8 [N, H, W, in_channels] (a
    fixed channel count) in, uint8 out, with the input shape of
    :func:`runtime_shape` (any size: resize its input before allocate_tensors).
    The TF1 converter, from a session of the flat graph of the frozen graph
    (both the TF1 and the TF2 converter refuse a SavedModel with assets), in
    a child process (convert_tflite)."""
    if size:
        check_tflite_size(generator, size)
    shape = [d if d > 0 else None for d in runtime_shape(generator, size)]
    graph_def, _ = frozen_graph_def(generator, input_shape=shape)
    where = f'at {size[0]}x{size[1]}' if size else 'for any size'
    convert_tflite(graph_def, path, where)


def convert_tflite(graph_def, path, where):
    """Writes ``path``, the TFLite model of serving_default's ``graph_def``,
    by TFLITE_CHILD in a child process; RunError (one line) when it fails
    or crashes. The child is killed if this process is interrupted."""
    import signal
    import subprocess
    import sys

    source = path + '.graph.pb'
    with open(source, 'wb') as f:
        f.write(graph_def.SerializeToString())
    names = [n + ':0' for n in TENSORS['serving_default']]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    child = subprocess.Popen([sys.executable, '-c', TFLITE_CHILD, source, path, *names],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        _, err = child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.remove(source)
    lines = err.decode(errors='replace').strip().splitlines()
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise runs.RunError(f'the TFLite converter crashed ({name}) converting the generator '
                            f'{where}: nothing was exported')
    if child.returncode:
        raise runs.RunError(f'the TFLite converter cannot convert this generator {where} '
                            f'({lines[-1] if lines else f"exit status {child.returncode}"})')


def write_onnx(folder, generator, size):
    """ONNX_FILES in ``folder``: serving_default's graph (uint8 in and out)
    and translate's (float32 in [-1, 1]), both of the input shape
    :func:`runtime_shape`; what tf2onnx cannot convert rewritten first
    (to_onnx.py). RunError (one line) if it still cannot."""
    generator = dataclasses.replace(generator,
                                    graph_def=to_onnx.rewrite_unsupported(generator.graph_def))
    shape = [d if d > 0 else None for d in runtime_shape(generator, size)]
    for signature, file_name in ONNX_FILES.items():
        graph_def, _ = frozen_graph_def(generator, signature, input_shape=shape)
        try:
            model = to_onnx.convert(graph_def, TENSORS[signature])
        except Exception as e:  # tf2onnx's and onnx's errors have no common class
            raise runs.RunError(f'tf2onnx cannot convert this generator '
                                f'({runs.one_line(e)})') from None
        with open(os.path.join(folder, file_name), 'wb') as f:
            f.write(model)


def _write_text(path, text):
    with open(path, 'w') as f:
        f.write(text)


def describe(plan, generator, key, checkpoint):
    """The export.json of one direction."""
    import tensorflow as tf

    info = {
        'model': plan.cfg.model, 'direction': DIRECTIONS[key], 'input_domain': key,
        'generator': generator.network, 'run': os.path.abspath(plan.run_dir),
        'checkpoint': os.path.abspath(checkpoint), 'step': runs.step_of(checkpoint),
        'mode': 'training' if plan.train_mode else 'inference',
        'input_channels': generator.in_channels, 'output_channels': generator.out_channels,
        'size_multiple': generator.multiple, 'min_size': generator.min_size,
        'formats': list(plan.formats), 'tensorflow': tf.__version__,
        'max_pixels': plan.max_pixels}
    if 'saved_model' in plan.formats:
        info['saved_model'] = {'tags': [SAVED_MODEL_TAG], 'signatures': {
            name: {'input': i, 'output': o} for name, (i, o) in SIGNATURES.items()}}
    names = {'input': TENSORS['serving_default'][0] + ':0',
             'output': TENSORS['serving_default'][1] + ':0'}
    if 'frozen_graph' in plan.formats:
        info['frozen_graph'] = dict(file='frozen_graph.pb', **names)
    if 'tflite' in plan.formats:
        info['tflite'] = dict(file='model.tflite',
                              input_shape=runtime_shape(generator, plan.tflite_size))
    if 'onnx' in plan.formats:
        info['onnx'] = {'opset': to_onnx.OPSET, **{
            name: {'file': file_name, 'input': TENSORS[name][0], 'output': TENSORS[name][1],
                   'input_shape': runtime_shape(generator, plan.onnx_size)}
            for name, file_name in ONNX_FILES.items()}}
    return info


def write_formats(plan, folder, generator, files):
    """The files of ``plan.formats`` for ``generator`` in the new folder
    ``folder``, and ``files`` (name -> text: config.json, export.json)."""
    if 'saved_model' in plan.formats:
        write_saved_model(folder, generator, files, max_pixels=plan.max_pixels)
    else:
        for file_name, text in files.items():
            _write_text(os.path.join(folder, file_name), text)
    if 'frozen_graph' in plan.formats:
        write_frozen_graph(os.path.join(folder, 'frozen_graph.pb'), generator)
    if 'tflite' in plan.formats:
        write_tflite(os.path.join(folder, 'model.tflite'), generator, plan.tflite_size)
    if 'onnx' in plan.formats:
        write_onnx(folder, generator, plan.onnx_size)


def export(plan, *, log=print):
    """Writes ``plan``'s export; returns {direction name: its folder}."""
    session.graph_mode()
    from cyclegan_tf import inference

    checkpoint = plan.checkpoint or inference.latest_checkpoint(plan.run_dir)
    roles = registry.of(plan.cfg).model_class
    keys = directions(roles, plan, runs.step_of(checkpoint))
    for key in roles.TRANSLATIONS:
        if plan.direction == 'both' and key not in keys:
            log(f'{DIRECTIONS[key]}: not exported: {roles.GENERATORS[key]} was not imported '
                f'into {plan.run_dir}')
    target = os.path.abspath(plan.export_dir)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        scratch = tempfile.mkdtemp(dir=parent, prefix=f'.{os.path.basename(target)}.tmp-')
    except OSError as e:
        raise runs.RunError(f'cannot write the export folder {plan.export_dir} '
                            f'({e.strerror or runs.one_line(e)})') from None
    folders = {}
    try:
        os.chmod(scratch, 0o755)  # mkdtemp's 0700 would hide it from a server's user
        generators = freeze_generators(plan.cfg, checkpoint, keys, training=plan.train_mode)
        for key, generator in generators.items():
            name = DIRECTIONS[key]
            folder = scratch if len(keys) == 1 else os.path.join(scratch, name)
            os.makedirs(folder, exist_ok=True)
            info = describe(plan, generator, key, checkpoint)
            files = {runs.CONFIG_FILE: json.dumps(plan.cfg.to_dict(), indent=2, sort_keys=True)
                     + '\n', EXPORT_FILE: json.dumps(info, indent=2) + '\n'}
            write_formats(plan, folder, generator, files)
            final = target if len(keys) == 1 else os.path.join(target, name)
            folders[name] = final
            log(f'{name}: {generator.network} of {plan.cfg.model} at step {info["step"]} '
                f'({info["mode"]} mode): {", ".join(plan.formats)} -> {final}')
        _move_into_place(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folders


def _move_into_place(scratch, target):
    """Renames the complete export ``scratch`` to ``target``; a previous
    export there (checked by plan) is moved aside first, then deleted."""
    old = None
    if os.path.isdir(target) and os.listdir(target):
        old = tempfile.mkdtemp(dir=os.path.dirname(target),
                               prefix=f'.{os.path.basename(target)}.old-')
        os.rename(target, os.path.join(old, 'export'))
    try:
        os.rename(scratch, target)  # replaces an empty folder
    except OSError:
        if old:  # put the previous export back
            os.rename(os.path.join(old, 'export'), target)
            os.rmdir(old)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
