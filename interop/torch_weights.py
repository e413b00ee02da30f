"""The official PyTorch networks' weights in this project's networks.

The official implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
models/networks.py) and modules.py build the same networks; only the names
and layouts differ. :func:`layer_map` pairs each layer of a built
modules.Network with its key prefix in the official state dict, e.g. for a
ResNet generator with n blocks::

    official key                      variable (under the network's scope)
    model.1                           input/conv          7x7 conv
    model.2                           input/norm
    model.4, model.7                  down_1/conv, down_2/conv (+ norm at .5, .8)
    model.<10+i>.conv_block.1 / .5    res_block_<i>/conv_0 / conv_1 (.6 / .7 with dropout)
    model.<10+i>.conv_block.2 / .6    res_block_<i>/norm_0 / norm_1
    model.<10+n>, model.<13+n>        up_1/deconv, up_2/deconv (+ norm at +1)
    model.<17+n>                      output

U-Net (the recursive UnetSkipConnectionBlock; level 1 is the outermost):
``model.model.0`` / ``.3`` are down_1 / up_1; level L >= 2 lives under
``model.model.1`` + ``.model.3`` * (L - 2), with its down conv at ``.model.1``,
down norm ``.model.2``, up deconv ``.model.5`` and up norm ``.model.6``
(the innermost level: ``.model.1`` and ``.model.3``, ``.model.4``, no down norm).
PatchGAN: ``model.0`` layer_0, ``model.<3n-1>`` / ``<3n>`` layer_n conv / norm,
``model.<3 n_layers + 2>`` output. Pixel discriminator: ``net.0`` layer_0,
``net.2`` / ``net.3`` layer_1 conv / norm, ``net.5`` output.

CUT (taesungp/contrastive-unpaired-translation): its generator and PatchGAN
record their layers as the official nn.Sequential lists them
(``official_layers``), so ``model.<i>`` is ``official_layers[i]`` whatever
no_antialias and no_antialias_up say. With the defaults (anti-aliased) and
n blocks: model.1 input/conv, model.4 / model.8 down_1/conv / down_2/conv,
model.7 / model.11 their blurs (Downsample), model.<12+i> res_block_<i>,
model.<12+n> / <16+n> up_1/blur / up_2/blur (Upsample), model.<13+n> /
<17+n> up_1/conv / up_2/conv, model.<21+n> output; the PatchGAN's blurs are
model.2, 6, 10 after its convs model.0, 3, 7, then model.11 and output
model.14. The blurs' ``filt`` buffers hold fixed filters: they are checked
(fixed_buffers), not loaded. PatchSampleF: ``mlp_<k>.0`` / ``mlp_<k>.2`` are
mlp_<k>/linear_0 / linear_1.

Tensors: conv weights [out, in, kh, kw] -> [kh, kw, in, out]; transposed
conv weights [in, out, kh, kw] -> [kh, kw, out, in] (conv2d_transpose's
layout; the same transposition, no flip); linear weights [out, in] -> [in,
out]; biases as they are; batch norm
weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
moving_variance (num_batches_tracked is dropped: it only serves PyTorch's
momentum=None). Instance norm has no parameters: the running_mean,
running_var and num_batches_tracked entries of old models are dropped, as
the official loader does (BaseModel.__patch_instance_norm_state_dict). A
``module.`` prefix (nn.DataParallel) is stripped.

The official convs before a norm have a bias only with instance norm
(``use_bias = norm_layer == InstanceNorm2d``), so with norm 'none' they have
none where ours keep one (see ops.Norm.conv_bias): those biases are set to
zero, which computes the same.
"""

import collections

import numpy as np

from cyclegan_tf.interop import pth
from cyclegan_tf.running import checkpoints

CONV, DECONV, NORM = 'conv', 'deconv', 'norm'
LINEAR, RES_BLOCK = 'linear', 'res_block'  # CUT's patch sampler; a ResnetBlock
BN_NAMES = (('weight', 'gamma'), ('bias', 'beta'), ('running_mean', 'moving_mean'),
            ('running_var', 'moving_variance'))
RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')
VARIABLE_NAMES = ('weights', 'biases', 'gamma', 'beta', 'moving_mean', 'moving_variance')


class WeightsError(ValueError):
    """A state dict that does not fit the network; the message is one line."""


def _resnet(net):
    """(scope, official prefix, kind, official bias) of a ResnetGenerator."""
    nb = net.norm_kind == 'instance'  # the official use_bias
    layers = [('input/conv', 'model.1', CONV, nb), ('input/norm', 'model.2', NORM, None),
              ('down_1/conv', 'model.4', CONV, nb), ('down_1/norm', 'model.5', NORM, None),
              ('down_2/conv', 'model.7', CONV, nb), ('down_2/norm', 'model.8', NORM, None)]
    shift = 1 if net.dropout_rate else 0  # the Dropout layer has an index too
    for i in range(net.n_blocks):
        block = f'model.{10 + i}.conv_block'
        layers += [(f'res_block_{i}/conv_0', f'{block}.1', CONV, nb),
                   (f'res_block_{i}/norm_0', f'{block}.2', NORM, None),
                   (f'res_block_{i}/conv_1', f'{block}.{5 + shift}', CONV, nb),
                   (f'res_block_{i}/norm_1', f'{block}.{6 + shift}', NORM, None)]
    up = 10 + net.n_blocks
    return layers + [('up_1/deconv', f'model.{up}', DECONV, nb),
                     ('up_1/norm', f'model.{up + 1}', NORM, None),
                     ('up_2/deconv', f'model.{up + 3}', DECONV, nb),
                     ('up_2/norm', f'model.{up + 4}', NORM, None),
                     ('output', f'model.{up + 7}', CONV, True)]


def _unet(net):
    nb, n = net.norm_kind == 'instance', net.num_downs
    layers = [('down_1', 'model.model.0', CONV, nb)]
    for level in range(2, n + 1):
        block = 'model.model.1' + '.model.3' * (level - 2)
        if level < n:
            layers += [(f'down_{level}/conv', f'{block}.model.1', CONV, nb),
                       (f'down_{level}/norm', f'{block}.model.2', NORM, None),
                       (f'up_{level}/deconv', f'{block}.model.5', DECONV, nb),
                       (f'up_{level}/norm', f'{block}.model.6', NORM, None)]
        else:  # the innermost block: no down norm, no submodule
            layers += [(f'down_{level}/conv', f'{block}.model.1', CONV, nb),
                       (f'up_{level}/deconv', f'{block}.model.3', DECONV, nb),
                       (f'up_{level}/norm', f'{block}.model.4', NORM, None)]
    return layers + [('up_1', 'model.model.3', DECONV, True)]


def _nlayer(net):
    nb = net.norm_kind == 'instance'
    layers = [('layer_0', 'model.0', CONV, True)]
    for n in range(1, net.n_layers + 1):
        layers += [(f'layer_{n}/conv', f'model.{3 * n - 1}', CONV, nb),
                   (f'layer_{n}/norm', f'model.{3 * n}', NORM, None)]
    return layers + [('output', f'model.{3 * net.n_layers + 2}', CONV, True)]


def _pixel(net):
    nb = net.norm_kind == 'instance'
    return [('layer_0', 'net.0', CONV, True), ('layer_1/conv', 'net.2', CONV, nb),
            ('layer_1/norm', 'net.3', NORM, None), ('output', 'net.5', CONV, nb)]


def _cut_sequence(net):
    """(scope, official prefix, kind, official bias) of CUT's generator or
    PatchGAN: the official ``model.<i>`` is ``net.official_layers[i]``. Its
    convs before a norm have a bias only with instance norm (use_bias), the
    others always; a ResnetBlock's convs and norms as in _resnet; the blurs
    have fixed filters (fixed_buffers), no variables."""
    nb, shift = net.norm_kind == 'instance', 1 if getattr(net, 'dropout_rate', 0) else 0
    official, layers = net.official_layers, []
    for i, layer in enumerate(official):
        prefix = f'model.{i}'
        if layer.kind in (CONV, DECONV):
            follows_norm = i + 1 < len(official) and official[i + 1].kind == NORM
            layers.append((layer.scope, prefix, layer.kind, nb if follows_norm else True))
        elif layer.kind == NORM:
            layers.append((layer.scope, prefix, NORM, None))
        elif layer.kind == RES_BLOCK:
            block = f'{prefix}.conv_block'
            layers += [(f'{layer.scope}/conv_0', f'{block}.1', CONV, nb),
                       (f'{layer.scope}/norm_0', f'{block}.2', NORM, None),
                       (f'{layer.scope}/conv_1', f'{block}.{5 + shift}', CONV, nb),
                       (f'{layer.scope}/norm_1', f'{block}.{6 + shift}', NORM, None)]
    return layers


def _patch_sample(net):
    """CUT's PatchSampleF: mlp_<k> is nn.Sequential(Linear, ReLU, Linear)."""
    if not net.use_mlp:
        return []
    return [entry for k in range(len(net.channels))
            for entry in ((f'mlp_{k}/linear_0', f'mlp_{k}.0', LINEAR, True),
                          (f'mlp_{k}/linear_1', f'mlp_{k}.2', LINEAR, True))]


def fixed_buffers(network):
    """Official key -> the value it must hold, for the fixed filters of CUT's
    anti-aliased networks: ``model.<i>.filt`` of each Downsample / Upsample,
    its filter repeated per channel, [C, 1, k, k]. These buffers are checked,
    never loaded: the filters here are constants (ops.blur_downsample)."""
    from cyclegan_tf import ops

    filters = {'blur_down': ops.DOWNSAMPLE_FILTER, 'blur_up': ops.UPSAMPLE_FILTER}
    return collections.OrderedDict(
        (f'model.{i}.filt', np.broadcast_to(filters[layer.kind],
                                            [layer.channels, 1, *filters[layer.kind].shape]))
        for i, layer in enumerate(getattr(network, 'official_layers', None) or ())
        if layer.kind in filters)


def _check_buffers(buffers, fixed, where):
    """Raises WeightsError unless ``buffers`` (key -> array, from the file) are
    exactly the ``fixed`` ones; ``where`` starts the message."""
    for key, expected in fixed.items():
        shape = list(expected.shape)
        if key not in buffers:
            raise WeightsError(f'{where}: it has no {key} (the fixed blur filter, shape {shape})')
        value = buffers[key]
        if list(value.shape) != shape:
            raise WeightsError(f'{where}: {key} has shape {list(value.shape)} in the file, the '
                               f'fixed blur filter is {shape}')
        difference = np.abs(value.astype(np.float64) - expected).max()
        if not difference <= 1e-7:  # taps are multiples of 1/64, exact in any float format
            raise WeightsError(f'{where}: {key} is not the fixed filter of the official '
                               f'{"Downsample" if shape[-1] == 3 else "Upsample"} (they differ by '
                               f'up to {difference:.3g}): a network with other filters')


def layer_map(network):
    """[(scope under the network, official key prefix, kind, official conv has a
    bias)] of a built modules.Network: kind 'conv', 'deconv' or 'norm'."""
    from cyclegan_tf import modules

    # CUT's networks first: they subclass ResnetGenerator and NLayerDiscriminator.
    for cls, layers in ((modules.CUTResnetGenerator, _cut_sequence),
                        (modules.CUTNLayerDiscriminator, _cut_sequence),
                        (modules.PatchSampleF, _patch_sample),
                        (modules.ResnetGenerator, _resnet), (modules.UnetGenerator, _unet),
                        (modules.NLayerDiscriminator, _nlayer),
                        (modules.PixelDiscriminator, _pixel)):
        if isinstance(network, cls):
            return layers(network)
    raise WeightsError(f'{network.name}: no official counterpart for a '
                       f'{type(network).__name__}')


def key_map(network):
    """The correspondence of one network, as two dicts:

    - official key -> (variable, kind): the tensors a state dict must hold;
    - variable -> official key or None (None: a bias the official network
      lacks, set to zero), one entry per variable of the network;

    plus the official keys that are read and dropped (running statistics of
    instance norms, num_batches_tracked of batch norms), as a set.
    """
    # The network's own variables: not the optimizer's slots under its scope.
    variables = {v.op.name[len(network.scope_name) + 1:]: v for v in network.global_variables
                 if v.op.name.rsplit('/', 1)[-1] in VARIABLE_NAMES}
    official, ours, ignored = collections.OrderedDict(), collections.OrderedDict(), set()
    norm = network.norm_kind
    for scope, prefix, kind, official_bias in layer_map(network):
        if kind == NORM:
            if norm == 'batch':
                for theirs, mine in BN_NAMES:
                    official[f'{prefix}.{theirs}'] = (variables.pop(f'{scope}/{mine}'), kind)
                ignored.add(f'{prefix}.num_batches_tracked')
            elif norm == 'instance':
                ignored.update(f'{prefix}.{name}' for name in RUNNING_STATS)
            continue
        official[f'{prefix}.weight'] = (variables.pop(f'{scope}/weights'), kind)
        bias = variables.pop(f'{scope}/biases', None)
        if official_bias:
            official[f'{prefix}.bias'] = (bias, kind)
        elif bias is not None:
            ours[bias] = None
    if variables:  # modules.py changed without this map: a bug, not a user error
        raise AssertionError(f'{network.name}: no official key for {sorted(variables)}')
    for key, (variable, _) in official.items():
        if variable is None:
            raise AssertionError(f'{network.name}: {key} has no variable')
        ours[variable] = key
    return official, ours, ignored


def torch_shape(variable):
    """The official shape of a variable's tensor."""
    shape = variable.shape.as_list()
    if len(shape) == 2:  # a linear layer's [in, out]: the official [out, in]
        return shape[::-1]
    return [shape[3], shape[2], shape[0], shape[1]] if len(shape) == 4 else shape


def convert(state_dict, network, *, source='the state dict'):
    """{variable: numpy array} for every variable of the built ``network``
    from an official state dict (key -> array, as pth.load returns).

    Raises WeightsError, one line naming ``source``, for a key that is not a
    string or appears twice (with and without ``module.``), a missing or
    unexpected key, a shape that differs (naming the key and both shapes), a
    value that is not finite or, in a trainable variable, beyond
    checkpoints.MAX_WEIGHT (what train.py's WeightCheck stops at).
    """
    official, ours, ignored = key_map(network)
    fixed, buffers = fixed_buffers(network), {}
    state = _tensors(state_dict, ignored, source)
    for key in [key for key in state if key in fixed]:  # checked, never loaded
        buffers[key] = state.pop(key)
    fits = f'does not fit {network.name} ({_describe(network)})'
    missing = [key for key in official if key not in state]
    extra = [key for key in state if key not in official]
    if missing or extra:
        parts = []
        if missing:
            variable = official[missing[0]][0]
            parts.append(f'it has no {missing[0]} (expected shape '
                         f'{torch_shape(variable)}){_more(missing)}')
        if extra:
            parts.append(f'it has {_name(extra[0])} of shape {list(state[extra[0]].shape)}, '
                         f'which the network lacks{_more(extra)}')
        raise WeightsError(f'{source} {fits}: {"; ".join(parts)}')
    _check_buffers(buffers, fixed, f'{source} {fits}')
    values = collections.OrderedDict()
    for variable, key in ours.items():
        if key is None:
            values[variable] = np.zeros(variable.shape.as_list(), np.float32)
            continue
        value = state[key]
        expected = torch_shape(variable)
        if list(value.shape) != expected:
            raise WeightsError(f'{source} {fits}: {key} has shape {list(value.shape)} in the '
                               f'file, the network expects {expected}')
        if not np.issubdtype(value.dtype, np.floating):
            raise WeightsError(f'{source}: {key} holds {value.dtype} values, not floats')
        value = _layout(value)
        with np.errstate(over='ignore'):  # a float64 beyond float32: Inf, refused below
            values[variable] = np.ascontiguousarray(value, dtype=np.float32)
        _check_values(values[variable], key, variable.trainable, source)
    return values


def _tensors(state_dict, ignored, source):
    """The arrays of an official state dict by key, without DataParallel's
    ``module.`` prefix and the keys ``ignored``; refuses a key that is not a
    string, one that appears twice, a value that is not an array."""
    state, seen = collections.OrderedDict(), {}
    for key, value in state_dict.items():
        if type(key) is not str:
            raise WeightsError(f'{source}: a key of type {type(key).__name__} ({_name(key)}), '
                               f'not a string (not a state dict)')
        name = key[len('module.'):] if key.startswith('module.') else key
        if name in seen:
            raise WeightsError(f'{source} holds {_name(name)} twice: as {_name(seen[name])} '
                               f'and as {_name(key)}')
        seen[name] = key
        if name in ignored:
            continue
        if not isinstance(value, np.ndarray):
            raise WeightsError(f'{source}: {_name(name)} holds a {type(value).__name__}, not a '
                               f'tensor (not a state dict of one network)')
        state[name] = value
    return state


def _check_values(value, key, trainable, source):
    """Refuses float32 ``value`` (of official ``key``) where train.py's
    checkpoints.WeightCheck would stop: any value not finite, a trainable one
    beyond checkpoints.MAX_WEIGHT in absolute value."""
    finite = np.isfinite(value)
    if not finite.all():
        nan = int(np.isnan(value).sum())
        raise WeightsError(f'{source}: {key} is not finite ({nan} NaN, '
                           f'{value.size - int(finite.sum()) - nan} Inf of {value.size} '
                           f'values): refused, a corrupt or diverged model')
    if trainable and value.size:
        peak = value.flat[np.abs(value).argmax()]
        if abs(peak) > checkpoints.MAX_WEIGHT:
            raise WeightsError(f'{source}: {key} holds {peak:.3g}, above '
                               f'{checkpoints.MAX_WEIGHT:g} in absolute value: refused, a '
                               f'diverged model (train.py stops at such a weight)')


def _name(key):
    """A key of the file in a message: as it is if a short printable string,
    the repr of a small number, else in a few words (a repr may be slow)."""
    if type(key) is str:
        return key if key.isprintable() and len(key) <= 100 else repr(key[:100])
    if type(key) in (bool, float, type(None)) or type(key) is int and abs(key) < 2 ** 64:
        return repr(key)
    return f'a {type(key).__name__}'


def _layout(value):
    """An official tensor in the layout of the variables here: conv weights
    [out, in, kh, kw] -> [kh, kw, in, out] (transposed convs: [in, out, ...]
    -> [kh, kw, out, in]), linear weights [out, in] -> [in, out]."""
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value.T if value.ndim == 2 else value


def _more(keys):
    return f' and {len(keys) - 1} more' if len(keys) > 1 else ''


def _describe(network):
    from cyclegan_tf import modules

    if isinstance(network, modules.PatchSampleF):
        return (f'patch sampler, nc {network.nc}, for features of '
                f'{list(network.channels or ())} channels')
    if isinstance(network, modules.CUTResnetGenerator):
        kind = (f'CUT resnet_{network.n_blocks}blocks, ngf {network.ngf}, no_antialias '
                f'{network.no_antialias}, no_antialias_up {network.no_antialias_up}')
    elif isinstance(network, modules.CUTNLayerDiscriminator):
        kind = (f'CUT {network.n_layers}-layer PatchGAN, ndf {network.ndf}, no_antialias '
                f'{network.no_antialias}')
    elif isinstance(network, modules.ResnetGenerator):
        kind = f'resnet_{network.n_blocks}blocks, ngf {network.ngf}'
    elif isinstance(network, modules.UnetGenerator):
        kind = f'unet_{2 ** network.num_downs}, ngf {network.ngf}'
    elif isinstance(network, modules.NLayerDiscriminator):
        kind = f'{network.n_layers}-layer PatchGAN, ndf {network.ndf}'
    else:
        kind = f'pixel discriminator, ndf {network.ndf}'
    return f'{kind}, {network.input_nc} input channels, norm {network.norm_kind}'


def load_into(sess, network, state_dict, *, source=None):
    """Assigns the official ``state_dict`` (a dict as pth.load returns, or a
    .pth path) to the built ``network``'s variables in ``sess``.

    Everything is checked before any variable changes: a PthError or a
    WeightsError (one line naming ``source``, default the path) leaves the
    network as it was. Returns the number of official tensors read.
    """
    if not isinstance(state_dict, dict):
        source = source or str(state_dict)
        state_dict = pth.load(state_dict)
    values = convert(state_dict, network, source=source or 'the state dict')
    # One run assigns every variable through its initializer's value input:
    # no new ops, so the graph may be finalized.
    sess.run([v.initializer for v in values],
             {v.initializer.inputs[1]: value for v, value in values.items()})
    return sum(key is not None for key in key_map(network)[1].values())
