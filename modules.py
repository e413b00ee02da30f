"""Networks composed from ops: ResNet and U-Net generators, PatchGAN and
pixel discriminators, and a small MLP for the toy GAN.

A network is configured once (``G = ResnetGenerator('G_A', ...)``), builds
its variables on the first call (``fake_B = G(real_A)``) and re-enters the
same variable scope with reuse=True on every later call (``rec_B = G(fake_A)``).
All its ops land in one name scope, so TensorBoard shows one box per network.
Making a second network of the same name in the same graph raises: share a
network by calling the same object, never by rebuilding it.

All networks work on NHWC tensors; generators map [-1, 1] images to [-1, 1]
images (tanh), discriminators return logits.
"""

import collections
import re

import tensorflow as tf

from cyclegan_tf import ops

tf1 = tf.compat.v1


class Network:
    """Base class: a named, reusable piece of graph with its own variables.

    Subclasses implement ``_build(x, training)`` and may override
    ``_check_input(x)`` to reject inputs at graph-build time.
    """

    def __init__(self, name):
        with tf1.variable_scope(name) as captured:
            pass
        fresh = ('/' + captured.original_name_scope).endswith('/' + name + '/')
        # Under a reusing scope (each replica of a tf.distribute strategy after
        # the first) a network takes the variables of the one created first.
        if not fresh or not captured.reuse and tf1.get_collection(
                tf1.GraphKeys.GLOBAL_VARIABLES, scope=re.escape(captured.name) + '/'):
            raise ValueError(f'a network named {captured.name!r} already exists in this graph: '
                             f'call that network again instead of creating a second one')
        self.name = name
        self._scope = captured
        self._graph = tf1.get_default_graph()
        self._built = False

    @property
    def scope_name(self):
        """Full variable-scope name, e.g. 'G_A' (or 'outer/G_A' if nested)."""
        return self._scope.name

    def __call__(self, x, *, training=True):
        """Applies the network to ``x``; creates the variables on the first call."""
        x = tf.convert_to_tensor(x)
        self._check_input(x)
        with tf1.variable_scope(self._scope, reuse=self._built, auxiliary_name_scope=False), \
                tf.name_scope(self._scope.original_name_scope):
            y = self._build(self._check_dynamic_input(x), training)
        self._built = True
        return y

    def _check_input(self, x):
        """Raises ValueError for an input this network cannot take."""

    def _check_dynamic_input(self, x):
        """Returns ``x``, with run-time checks of what is unknown at build time."""
        return x

    def _build(self, x, training):
        raise NotImplementedError

    def _collect(self, key):
        if not self._built:
            raise RuntimeError(f'{self.name} has no variables before its first call')
        return self._graph.get_collection(key, scope=re.escape(self._scope.name) + '/')

    @property
    def variables(self):
        """Trainable variables of this network and of no other (exact scope)."""
        return self._collect(tf1.GraphKeys.TRAINABLE_VARIABLES)

    @property
    def global_variables(self):
        """All variables under this network's scope, batch-norm averages included."""
        return self._collect(tf1.GraphKeys.GLOBAL_VARIABLES)

    @property
    def update_ops(self):
        """Batch-norm moving-average updates made by this network's calls."""
        if not self._built:
            return []
        prefix = self._scope.original_name_scope
        return [op for op in self._graph.get_collection(tf1.GraphKeys.UPDATE_OPS)
                if op.name.startswith(prefix)]

    @property
    def num_params(self):
        return sum(v.shape.num_elements() for v in self.variables)


class ImageNetwork(Network):
    """A network of NHWC images with ``input_nc`` channels whose height and
    width must be multiples of ``multiple`` (checked at graph-build time) and
    at least ``min_size``."""

    multiple = 1
    # How far (in input pixels) an output pixel sees, None where it sees the
    # whole input (a U-Net's bottleneck): the margin a tile needs.
    receptive_radius = None

    @property
    def min_size(self):
        return self.multiple

    def __init__(self, name, *, input_nc, norm='instance', init_type='normal', init_gain=0.02):
        super().__init__(name)
        if norm not in ops.NORMS:
            raise ValueError(f'unknown norm {norm!r}; choose one of {ops.NORMS}')
        self.input_nc = input_nc
        self.norm_kind = norm
        self.init = ops.initializer(init_type, init_gain)
        # The official init_weights draws batch-norm scales from N(1, init_gain).
        self.gamma_init = tf1.random_normal_initializer(1.0, init_gain)
        self._moments = None  # this call's ops.Moments, read by _norm

    def __call__(self, x, *, training=True, moments=None):
        """Applies the network to ``x``. ``moments``: an ops.Moments that
        records the statistics of this call's normalization layers, or gives
        them (see ops.Norm)."""
        self._moments = moments
        try:
            return super().__call__(x, training=training)
        finally:
            self._moments = None

    def _norm(self, training):
        return ops.Norm(self.norm_kind, training, self.gamma_init, self._moments)

    def _check_input(self, x):
        if x.shape.rank != 4 or x.shape[-1] != self.input_nc:
            raise ValueError(f'{self.name} takes [N, H, W, {self.input_nc}] images, '
                             f'got shape {x.shape}')
        for axis, size in (('height', x.shape[1]), ('width', x.shape[2])):
            if size is not None and size % self.multiple:
                raise ValueError(f'{self.name} ({type(self).__name__}) needs image {axis} '
                                 f'a multiple of {self.multiple}, got {size}')

    def _check_dynamic_input(self, x):
        if self.multiple == 1 or None not in x.shape[1:3]:
            return x
        check = tf.debugging.assert_equal(
            tf.math.floormod(tf.shape(x)[1:3], self.multiple), 0, name='check_size',
            message=f'{self.name} ({type(self).__name__}) needs height and width '
                    f'multiples of {self.multiple}')
        with tf.control_dependencies([check]):
            return tf.identity(x)


class ResnetGenerator(ImageNetwork):
    """Johnson et al.'s generator, as in the official CycleGAN.

    reflect-pad 3, conv7 (ngf), two stride-2 convs (2 ngf, 4 ngf),
    ``n_blocks`` residual blocks, two transposed convs back, reflect-pad 3,
    conv7 (output_nc), tanh. [N, H, W, input_nc] -> [N, H, W, output_nc];
    H and W must be multiples of 4, and at least 8: the residual blocks
    reflect-pad 1 pixel of features at a quarter of the size, which needs 2.
    Variables: input, down_1, down_2, res_block_0 ... res_block_{n-1}, up_1,
    up_2, output.
    """

    multiple = 4
    min_size = 8

    def __init__(self, name, *, input_nc=3, output_nc=3, ngf=64, n_blocks=9, use_dropout=False,
                 **kwargs):
        super().__init__(name, input_nc=input_nc, **kwargs)
        self.output_nc, self.ngf, self.n_blocks = output_nc, ngf, n_blocks
        self.dropout_rate = 0.5 if use_dropout else 0.0

    @property
    def receptive_radius(self):
        """84 px for 9 blocks: each conv adds (k - 1) / 2 pixels of its input,
        whose pixels are 1, 2 or 4 of the image's: conv7 3, the stride-2 convs
        1 and 2, each block's two conv3s 2 x 4, the output conv7 3; the
        transposed convs half a pixel of their input each, 2 and 1 (an output
        pixel sits at input position o / 2 and reads the input pixels nearest
        it). tests/test_tiling.py measures it."""
        return 3 + 1 + 2 + self.n_blocks * 2 * 4 + 2 + 1 + 3

    def _build(self, x, training):
        norm, init = self._norm(training), self.init
        y = ops.conv_norm_act(x, self.ngf, 7, norm=norm, padding='reflect', init=init,
                              name='input')
        for i in (1, 2):
            y = ops.conv_norm_act(y, self.ngf * 2 ** i, 3, 2, norm=norm, init=init,
                                  name=f'down_{i}')
        for i in range(self.n_blocks):
            y = ops.res_block(y, norm=norm, dropout_rate=self.dropout_rate, init=init,
                              name=f'res_block_{i}')
        for i in (1, 2):
            y = ops.deconv_norm_act(y, self.ngf * 2 ** (2 - i), 3, norm=norm, init=init,
                                    name=f'up_{i}')
        y = ops.conv2d(y, self.output_nc, 7, padding='reflect', init=init, name='output')
        return tf.tanh(y)


class UnetGenerator(ImageNetwork):
    """The pix2pix U-Net with ``num_downs`` stride-2 levels (8 for unet_256,
    7 for unet_128), as the official recursive UnetSkipConnectionBlock.

    Down: 4x4 stride-2 convs with leaky ReLU 0.2 and norm (none on the first
    and innermost); up: ReLU, 4x4 transposed convs and norm, each level's
    output concatenated with the matching encoder features; dropout 0.5 on
    the ``num_downs - 5`` innermost decoder levels of ngf*8 channels when
    ``use_dropout``. [N, H, W, input_nc] -> [N, H, W, output_nc]; H and W must
    be multiples of 2**num_downs (a 1x1 bottleneck at 256 px for unet_256).
    Variables: down_1 ... down_n, up_n ... up_1.
    """

    def __init__(self, name, *, input_nc=3, output_nc=3, num_downs=8, ngf=64, use_dropout=False,
                 **kwargs):
        super().__init__(name, input_nc=input_nc, **kwargs)
        if num_downs < 5:
            raise ValueError(f'a U-Net needs at least 5 levels, got num_downs={num_downs}')
        self.output_nc, self.num_downs, self.ngf = output_nc, num_downs, ngf
        self.use_dropout = use_dropout
        self.multiple = 2 ** num_downs

    def _filters(self, level):
        return self.ngf * min(2 ** (level - 1), 8)

    def _build(self, x, training):
        norm, init, n = self._norm(training), self.init, self.num_downs
        features = [ops.conv2d(x, self.ngf, 4, 2, bias=norm.conv_bias, init=init, name='down_1')]
        for level in range(2, n + 1):
            with tf1.variable_scope(f'down_{level}'):
                y = ops.lrelu(features[-1])
                y = ops.conv2d(y, self._filters(level), 4, 2, bias=norm.conv_bias, init=init,
                               name='conv')
                features.append(y if level == n else norm(y))
        y = features[-1]
        for level in range(n, 1, -1):
            with tf1.variable_scope(f'up_{level}'):
                y = ops.deconv2d(ops.relu(y), self._filters(level - 1), 4, bias=norm.conv_bias,
                                 init=init, name='deconv')
                y = norm(y)
                y = ops.dropout(y, 0.5 if self.use_dropout and 5 <= level < n else 0.0,
                                training=training)
            y = tf.concat([features[level - 2], y], axis=-1, name=f'skip_{level - 1}')
        y = ops.deconv2d(ops.relu(y), self.output_nc, 4, init=init, name='up_1')
        return tf.tanh(y)


class NLayerDiscriminator(ImageNetwork):
    """The PatchGAN: 4x4 convs, ``n_layers`` of stride 2, then two of stride 1.

    With n_layers 3 each output sees a 70x70 patch and a 256x256 input gives
    a 30x30 map of logits: [N, H, W, input_nc] -> [N, H/8 - 2, W/8 - 2, 1].
    Variables: layer_0 ... layer_{n_layers}, output.
    """

    def __init__(self, name, *, input_nc=3, ndf=64, n_layers=3, **kwargs):
        super().__init__(name, input_nc=input_nc, **kwargs)
        self.ndf, self.n_layers = ndf, n_layers

    @property
    def min_size(self):
        """The smallest input side that gives a logits map (24 for n_layers 3)."""
        size = 1
        while self.output_size(size) < 1:
            size += 1
        return size

    def output_size(self, size):
        """The logits map's side for an input side ``size`` (may be < 1)."""
        for _ in range(self.n_layers):
            size = (size + 2 - 4) // 2 + 1
        return size - 2

    def _check_input(self, x):
        super()._check_input(x)
        for size in x.shape[1:3]:
            if size is not None and self.output_size(size) < 1:
                raise ValueError(f'{self.name}: a {size} px input is too small for a PatchGAN '
                                 f'with n_layers={self.n_layers}')

    def _build(self, x, training):
        norm, init = self._norm(training), self.init
        y = ops.lrelu(ops.conv2d(x, self.ndf, 4, 2, init=init, name='layer_0'))
        for n in range(1, self.n_layers + 1):
            stride = 2 if n < self.n_layers else 1
            y = ops.conv_norm_act(y, self.ndf * min(2 ** n, 8), 4, stride, norm=norm,
                                  activation=ops.lrelu, init=init, name=f'layer_{n}')
        return ops.conv2d(y, 1, 4, init=init, name='output')


class PixelDiscriminator(ImageNetwork):
    """The 1x1 PixelGAN: every pixel is judged alone.
    [N, H, W, input_nc] -> [N, H, W, 1] logits."""

    def __init__(self, name, *, input_nc=3, ndf=64, **kwargs):
        super().__init__(name, input_nc=input_nc, **kwargs)
        self.ndf = ndf

    def _build(self, x, training):
        norm, init = self._norm(training), self.init
        y = ops.lrelu(ops.conv2d(x, self.ndf, 1, init=init, name='layer_0'))
        y = ops.conv_norm_act(y, self.ndf * 2, 1, norm=norm, activation=ops.lrelu, init=init,
                              name='layer_1')
        return ops.conv2d(y, 1, 1, bias=norm.conv_bias, init=init, name='output')


def define_G(cfg, name, *, input_nc=None, output_nc=None):
    """The generator named by ``cfg.netG``, configured from an ImageConfig."""
    input_nc = cfg.input_nc if input_nc is None else input_nc
    output_nc = cfg.output_nc if output_nc is None else output_nc
    common = dict(input_nc=input_nc, output_nc=output_nc, ngf=cfg.ngf,
                  use_dropout=not cfg.no_dropout, norm=cfg.norm, init_type=cfg.init_type,
                  init_gain=cfg.init_gain)
    if cfg.netG.startswith('resnet_'):
        return ResnetGenerator(name, n_blocks=int(cfg.netG[7:-6]), **common)
    if cfg.netG.startswith('unet_'):
        size = int(cfg.netG[5:])
        return UnetGenerator(name, num_downs=size.bit_length() - 1, **common)
    raise ValueError(f'unknown netG {cfg.netG!r}')


def define_D(cfg, name, *, input_nc=None):
    """The discriminator named by ``cfg.netD``, configured from an ImageConfig."""
    common = dict(input_nc=cfg.output_nc if input_nc is None else input_nc, ndf=cfg.ndf,
                  norm=cfg.norm, init_type=cfg.init_type, init_gain=cfg.init_gain)
    if cfg.netD in ('basic', 'n_layers'):
        n_layers = 3 if cfg.netD == 'basic' else cfg.n_layers_D
        return NLayerDiscriminator(name, n_layers=n_layers, **common)
    if cfg.netD == 'pixel':
        return PixelDiscriminator(name, **common)
    raise ValueError(f'unknown netD {cfg.netD!r}')


class MLP(Network):
    """A multilayer perceptron of vectors, the toy GAN's generator and
    discriminator: ``hidden_layers`` fully connected layers of
    ``hidden_units`` with leaky ReLU 0.2, then a linear output layer.
    [N, input_dim] -> [N, output_dim] (logits for a discriminator).
    Variables: hidden_0 ... hidden_{n-1}, output.

    Weights are Xavier (Glorot) normal with gain 1 by default: the image
    networks' N(0, 0.02) would start a small MLP as an almost constant map.
    """

    def __init__(self, name, *, input_dim, output_dim, hidden_units=64, hidden_layers=2,
                 init_type='xavier', init_gain=1.0):
        super().__init__(name)
        if min(input_dim, output_dim, hidden_units) < 1 or hidden_layers < 0:
            raise ValueError(f'{name}: dimensions must be positive and hidden_layers >= 0')
        self.input_dim, self.output_dim = input_dim, output_dim
        self.hidden_units, self.hidden_layers = hidden_units, hidden_layers
        self.init = ops.initializer(init_type, init_gain)

    def _check_input(self, x):
        if x.shape.rank != 2 or x.shape[-1] != self.input_dim:
            raise ValueError(f'{self.name} takes [N, {self.input_dim}] vectors, '
                             f'got shape {x.shape}')

    def _build(self, x, training):
        y = x
        for i in range(self.hidden_layers):
            y = ops.lrelu(ops.linear(y, self.hidden_units, init=self.init, name=f'hidden_{i}'))
        return ops.linear(y, self.output_dim, init=self.init, name='output')


# ---------------------------------------------------------------- CUT
# CUT / FastCUT (Park et al. 2020), as taesungp/contrastive-unpaired-translation
# builds them (models/networks.py): anti-aliased variants of the ResNet
# generator and the PatchGAN, and the patch sampler netF of the PatchNCE loss.

OfficialLayer = collections.namedtuple('OfficialLayer', 'scope kind channels')
OfficialLayer.__doc__ = """Layer i of an official nn.Sequential (``model.<i>``): the scope of
its variables under the network, what it is ('pad', 'conv', 'deconv', 'norm', 'relu',
'lrelu', 'blur_down', 'blur_up', 'res_block', 'tanh') and its output channels."""


class _Sequence:
    """Builds a network layer by layer as the official ``self.model``
    nn.Sequential lists them: ``outputs[i]`` is the output of the official
    ``model[i]`` and ``layers[i]`` its OfficialLayer. With ``stop``, the layers
    after ``model[stop]`` are not built (``add`` returns the last output), as
    the official ``forward(encode_only=True)`` returns there."""

    def __init__(self, network, x, stop=None):
        self._prefix, self._last, self._stop = network.scope_name + '/', x, stop
        self.layers, self.outputs = [], []

    def add(self, kind, op, *args, name=None, **kwargs):
        """Applies ``op(last output, *args, name=name or kind, **kwargs)`` as the next layer."""
        if self._stop is not None and len(self.outputs) > self._stop:
            return self._last
        name = name or kind
        y = op(self._last, *args, name=name, **kwargs)
        scope = f'{tf1.get_variable_scope().name}/{name}'[len(self._prefix):]
        self.layers.append(OfficialLayer(scope, kind, y.shape[-1]))
        self.outputs.append(y)
        self._last = y
        return y


def _record(network, seq, num_layers):
    """Keeps the first call's layers as ``network.official_layers``; checks later calls'."""
    layers = tuple(seq.layers)
    if network.official_layers is None:
        if len(layers) != num_layers:  # num_layers and _build disagree: a bug
            raise AssertionError(f'{network.name}: {len(layers)} layers, not {num_layers}')
        network.official_layers = layers
    elif layers != network.official_layers[:len(layers)]:
        raise AssertionError(f'{network.name}: a later call built other layers')


class CUTResnetGenerator(ResnetGenerator):
    """CUT's ResNet generator (the official CUT ResnetGenerator), anti-aliased by
    default: each downsampling is a stride-1 conv3, norm, ReLU and
    ops.blur_downsample; each upsampling ops.blur_upsample, then a conv3, norm
    and ReLU. ``no_antialias`` / ``no_antialias_up`` switch back to the
    stride-2 convs / transposed convs of CycleGAN's ResnetGenerator (both on:
    that network). [N, H, W, input_nc] -> [N, H, W, output_nc]; H and W
    multiples of 4, at least 8. Same parameters as ResnetGenerator (11,378,179
    with 9 blocks, ngf 64): the filters are constants.

    ``G(x, nce_layers=(0, 4, 8, 12, 16))`` also returns the features PatchNCE
    compares: the outputs of those layers of the official nn.Sequential
    (``official_layers``; 0 is the reflect-padded input, 4 the first
    downsampling conv, 12 and 16 the outputs of residual blocks 0 and 4), as
    the official code leaves them (see _feature: an in-place ReLU).
    Variables: input/conv, down_1/conv, down_2/conv, res_block_0 ...,
    up_1/conv (deconv), up_2/conv (deconv), output; norms beside the convs.
    """

    def __init__(self, name, *, no_antialias=False, no_antialias_up=False, init_type='xavier',
                 **kwargs):
        # init_type: the official CUT's --init_type default (CycleGAN's is 'normal').
        super().__init__(name, init_type=init_type, **kwargs)
        self.no_antialias, self.no_antialias_up = no_antialias, no_antialias_up
        self.official_layers = None  # tuple of OfficialLayer, known after the first call
        self._stop = None

    @property
    def receptive_radius(self):
        """93 px for 9 blocks, anti-aliased both ways (69 for 6; CycleGAN's 84
        and 60 with both blurs off), counted as ResnetGenerator's. Down, each
        conv3 then blur reads a pixel of its input each side: down_1 1 + 1,
        down_2 2 + 2 (a stride-2 conv3: 1, 2). Up, the blurred upsampling reads
        the 2 input pixels nearest each output pixel and the conv3 after it one
        more output pixel each side, 1.5 input pixels: up_1 6, up_2 3 (a
        transposed conv: 2, 1). tests/test_tiling.py measures each variant."""
        down = 3 if self.no_antialias else 6
        up = 3 if self.no_antialias_up else 9
        return 3 + down + self.n_blocks * 2 * 4 + up + 3

    @property
    def antialias(self):
        return not self.no_antialias

    @property
    def num_layers(self):
        """The length of the official nn.Sequential: input 4 layers, a down
        block 3 (4 with its blur), the blocks, an up block 3 (4), output 3."""
        down, up = 3 if self.no_antialias else 4, 3 if self.no_antialias_up else 4
        return 4 + 2 * down + self.n_blocks + 2 * up + 3

    def __call__(self, x, *, training=True, moments=None, nce_layers=(), encode_only=False):
        """The generated images; with ``nce_layers``, (images, features), the
        features a list of the outputs of those layers (NHWC) in that order;
        ``encode_only``: the features alone, without building the layers after
        the last one (as the official encode_only). The first call must build
        the whole network, so it cannot be encode_only. ``moments`` as
        ImageNetwork's (a tiled translation's statistics)."""
        layers = self._check_nce_layers(nce_layers, encode_only)
        self._stop = layers[-1] if encode_only else None  # read by _build, this call only
        try:
            outputs = super().__call__(x, training=training, moments=moments)
        finally:
            self._stop = None
        features = [self._feature(outputs, i) for i in layers]
        if encode_only:
            return features
        return (outputs[-1], features) if layers else outputs[-1]

    def _check_nce_layers(self, nce_layers, encode_only):
        layers = [int(i) for i in nce_layers]
        # Stricter than the official forward, which returns its features in layer
        # order and stops at the last one listed: only increasing lists mean that.
        if layers != sorted(set(layers)) or layers and not 0 <= layers[0] <= layers[-1] \
                < self.num_layers:
            raise ValueError(f'{self.name}: nce_layers must be increasing layer indices in '
                             f'0 ... {self.num_layers - 1}, got {list(nce_layers)}')
        if encode_only and not layers:
            raise ValueError(f'{self.name}: encode_only needs nce_layers')
        if encode_only and not self._built:
            raise ValueError(f'{self.name}: the first call must build the whole network '
                             f'(encode_only=False)')
        return layers

    def _feature(self, outputs, i):
        """The official feature i: the tensor ``model[i]`` returned, as the later
        layers leave it. The official ReLU(True) layers overwrite their input
        in place, so a feature followed by one (through Identity norms, norm
        'none') is the ReLU's output: without anti-aliasing, layer 8 (down_2's
        norm) is passed on rectified. ``outputs``: the layers built."""
        kinds = [layer.kind for layer in self.official_layers[:len(outputs)]]
        j = i
        while j + 1 < len(outputs) and kinds[j + 1] == 'norm' and self.norm_kind == 'none':
            j += 1  # an Identity returns its input: the same tensor
        return outputs[j + 1] if j + 1 < len(outputs) and kinds[j + 1] == 'relu' else outputs[i]

    def _build(self, x, training):
        norm, init = self._norm(training), self.init
        seq = _Sequence(self, x, self._stop)
        with tf1.variable_scope('input'):
            seq.add('pad', ops.reflect_pad, 3)
            seq.add('conv', ops.conv2d, self.ngf, 7, padding='valid', bias=norm.conv_bias,
                    init=init)
            seq.add('norm', norm)
            seq.add('relu', ops.relu)
        for i in (1, 2):
            with tf1.variable_scope(f'down_{i}'):
                seq.add('conv', ops.conv2d, self.ngf * 2 ** i, 3, 1 if self.antialias else 2,
                        bias=norm.conv_bias, init=init)
                seq.add('norm', norm)
                seq.add('relu', ops.relu)
                if self.antialias:
                    seq.add('blur_down', ops.blur_downsample, name='blur')
        for i in range(self.n_blocks):
            seq.add('res_block', ops.res_block, norm=norm, dropout_rate=self.dropout_rate,
                    init=init, name=f'res_block_{i}')
        for i in (1, 2):
            self._up_block(seq, i, norm)
        seq.add('pad', ops.reflect_pad, 3, name='output_pad')
        seq.add('conv', ops.conv2d, self.output_nc, 7, padding='valid', init=init, name='output')
        seq.add('tanh', tf.tanh)
        _record(self, seq, self.num_layers)
        return seq.outputs

    def _up_block(self, seq, i, norm):
        filters = self.ngf * 2 ** (2 - i)
        with tf1.variable_scope(f'up_{i}'):
            if self.no_antialias_up:
                seq.add('deconv', ops.deconv2d, filters, 3, bias=norm.conv_bias, init=self.init)
            else:
                seq.add('blur_up', ops.blur_upsample, name='blur')
                seq.add('conv', ops.conv2d, filters, 3, bias=norm.conv_bias, init=self.init)
            seq.add('norm', norm)
            seq.add('relu', ops.relu)


class CUTNLayerDiscriminator(NLayerDiscriminator):
    """CUT's PatchGAN (the official CUT NLayerDiscriminator), anti-aliased by
    default: each stride-2 4x4 conv of CycleGAN's PatchGAN becomes a stride-1
    4x4 conv, its norm and leaky ReLU, then ops.blur_downsample.
    ``no_antialias`` gives CycleGAN's NLayerDiscriminator. The logits map has
    the same size either way (a padded 4x4 conv, size - 1, then the blur's
    ceil(size / 2) is size // 2, as a stride-2 4x4 conv): 30x30 for 256x256 with
    n_layers 3, and the same minimum input (24). The same parameters as
    NLayerDiscriminator (2,764,737 at ndf 64): the filters are constants.
    Variables: layer_0/conv, layer_1/conv (+ norm) ... layer_{n_layers}, output.
    """

    def __init__(self, name, *, no_antialias=False, init_type='xavier', **kwargs):
        # init_type: the official CUT's --init_type default (CycleGAN's is 'normal').
        super().__init__(name, init_type=init_type, **kwargs)
        self.no_antialias = no_antialias
        self.official_layers = None  # tuple of OfficialLayer, known after the first call

    @property
    def num_layers(self):
        """The length of the official nn.Sequential."""
        return 3 * self.n_layers + 3 + (0 if self.no_antialias else self.n_layers)

    def _build(self, x, training):
        norm, init = self._norm(training), self.init
        antialias = not self.no_antialias
        seq = _Sequence(self, x)
        with tf1.variable_scope('layer_0'):
            seq.add('conv', ops.conv2d, self.ndf, 4, 1 if antialias else 2, init=init)
            seq.add('lrelu', ops.lrelu)
            if antialias:
                seq.add('blur_down', ops.blur_downsample, name='blur')
        for n in range(1, self.n_layers + 1):
            strided = n < self.n_layers
            with tf1.variable_scope(f'layer_{n}'):
                seq.add('conv', ops.conv2d, self.ndf * min(2 ** n, 8), 4,
                        2 if strided and not antialias else 1, bias=norm.conv_bias, init=init)
                seq.add('norm', norm)
                seq.add('lrelu', ops.lrelu)
                if strided and antialias:
                    seq.add('blur_down', ops.blur_downsample, name='blur')
        seq.add('conv', ops.conv2d, 1, 4, init=init, name='output')
        _record(self, seq, self.num_layers)
        return seq.outputs[-1]


class PatchSampleF(Network):
    """CUT's patch sampler netF (the official PatchSampleF; netF 'mlp_sample',
    or 'sample' with ``use_mlp=False``): from each feature map of the
    generator, the features at ``num_patches`` positions, each passed through
    that layer's MLP (Linear C -> nc, ReLU, Linear nc -> nc, made from the
    feature's channel count C on the first call) and L2-normalized.

    ``F(features)`` draws the positions (a random permutation of each map's
    positions, its first num_patches, shared by the images of the batch);
    ``F(features, patch_ids=ids)`` takes the ids another call returned, so
    query and key features are sampled at the same patches.
    Variables: mlp_0/linear_0, mlp_0/linear_1, mlp_1/... (xavier, gain 0.02,
    the official CUT defaults); 560,384 parameters for the default CUT
    generator's 5 layers (3, 128, 256, 256, 256 channels) at nc 256.
    """

    norm_kind = 'none'  # no normalization layers (torch_weights reads the norm of a network)

    def __init__(self, name, *, nc=256, num_patches=256, use_mlp=True, init_type='xavier',
                 init_gain=0.02):
        super().__init__(name)
        if nc < 1 or num_patches < 0:
            raise ValueError(f'{name}: nc must be positive and num_patches >= 0')
        self.nc, self.num_patches, self.use_mlp = nc, num_patches, use_mlp
        self.init = ops.initializer(init_type, init_gain)
        self.channels = None  # each feature's channel count, from the first call

    def __call__(self, features, patch_ids=None):
        """features: a list of [B, H_l, W_l, C_l] maps; patch_ids: None (draw
        them) or a list of [P_l] int ids per map, position h * W_l + w.

        Returns (samples, ids): samples[l] is [B * P_l, nc] (C_l without the
        MLP), image-major, each row of norm 1; ids[l] the [P_l] int64 ids used,
        P_l = min(num_patches, H_l * W_l). With num_patches 0, every position:
        samples[l] is [B, H_l, W_l, nc], normalized over the positions (the
        official Normalize over dim 1 of its [B, H*W, nc]), and ids[l] None.
        """
        features = [tf.convert_to_tensor(f) for f in features]
        patch_ids = [None] * len(features) if patch_ids is None else list(patch_ids)
        self._check_features(features, patch_ids)
        # Network.__call__'s scopes; that takes one tensor, this a list.
        with tf1.variable_scope(self._scope, reuse=self._built, auxiliary_name_scope=False), \
                tf.name_scope(self._scope.original_name_scope):
            pairs = [self._sample(k, f, ids) for k, (f, ids) in enumerate(zip(features, patch_ids))]
        self._built = True
        self.channels = tuple(f.shape[-1] for f in features)
        return [sample for sample, _ in pairs], [ids for _, ids in pairs]

    def _check_features(self, features, patch_ids):
        if not features or any(f.shape.rank != 4 or f.shape[-1] is None for f in features):
            raise ValueError(f'{self.name} takes a list of [B, H, W, C] feature maps, C known')
        if len(patch_ids) != len(features):
            raise ValueError(f'{self.name}: {len(patch_ids)} patch ids for {len(features)} maps')
        channels = tuple(f.shape[-1] for f in features)
        if self.channels is not None and channels != self.channels:
            raise ValueError(f'{self.name} was made for features of {list(self.channels)} '
                             f'channels, got {list(channels)}')

    def _sample(self, k, feature, ids):
        """(samples, ids) of feature map k; see __call__."""
        channels, shape = feature.shape[-1], tf.shape(feature)
        positions = shape[1] * shape[2]
        flat = tf.reshape(feature, tf.stack([shape[0], positions, channels]))  # h * W + w
        if self.num_patches == 0:
            x = tf.reshape(flat, [-1, channels])
        else:
            if ids is None:
                order = tf.random.shuffle(tf.range(tf.cast(positions, tf.int64)))
                ids = tf.slice(order, [0], [tf.minimum(positions, self.num_patches)])
            ids = tf.cast(ids, tf.int64)
            x = tf.reshape(tf.gather(flat, ids, axis=1), [-1, channels])  # [B * P, C]
        if self.use_mlp:
            with tf1.variable_scope(f'mlp_{k}'):
                x = ops.relu(ops.linear(x, self.nc, init=self.init, name='linear_0'))
                x = ops.linear(x, self.nc, init=self.init, name='linear_1')
        if self.num_patches:
            return ops.l2_normalize(x, axis=1), ids
        x = tf.reshape(x, tf.stack([shape[0], positions, x.shape[-1]]))
        x = ops.l2_normalize(x, axis=1)  # over the positions, as the official (see __call__)
        return tf.reshape(x, tf.stack([shape[0], shape[1], shape[2], x.shape[-1]])), None
