"""torch_weights.py: the official networks' weights give the official outputs.

Every network of ../shared/fixtures/torch_reference, built here with the
official call's settings, loaded with torch_weights.load_into (what
import_torch.py calls) and run as the official eval mode (batch-norm moving
averages, no dropout), matches the official output to 1e-5.
"""

import collections
import json

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import config, modules
from cyclegan_tf.interop import pth, torch_weights
from cyclegan_tf.interop.torch_weights import WeightsError
from cyclegan_tf.running import checkpoints

tf1 = tf.compat.v1

# Fixture case -> (G or D, config settings, input channels), from index.json's official calls.
CASES = {
    'resnet_9blocks_ngf8': ('G', dict(netG='resnet_9blocks', ngf=8, norm='instance',
                                      no_dropout=True), 3),
    'resnet_6blocks_ngf8': ('G', dict(netG='resnet_6blocks', ngf=8, norm='instance',
                                      no_dropout=True), 3),
    'resnet_6blocks_ngf8_old_instance_stats': ('G', dict(netG='resnet_6blocks', ngf=8,
                                                         norm='instance', no_dropout=True), 3),
    'unet_256_ngf8_batch': ('G', dict(netG='unet_256', ngf=8, norm='batch', no_dropout=False), 3),
    'unet_128_ngf8_batch': ('G', dict(netG='unet_128', ngf=8, norm='batch', no_dropout=False,
                                      input_nc=1, output_nc=2), 1),
    'patchgan_basic_ndf8': ('D', dict(netD='basic', ndf=8, norm='instance'), 3),
    'patchgan_cond_ndf8_batch': ('D', dict(netD='basic', ndf=8, norm='batch'), 6),
    'pixel_ndf8': ('D', dict(netD='pixel', ndf=8, norm='instance'), 3),
}


def build(case, name='N', **overrides):
    kind, settings, channels = CASES[case]
    cfg = config.CycleGANConfig(**{**settings, **overrides})
    if kind == 'G':
        return modules.define_G(cfg, name)
    return modules.define_D(cfg, name, input_nc=channels)


def reference(fixtures_dir, case):
    folder = fixtures_dir / 'torch_reference'
    files = [folder / f'{case}.pth', folder / f'{case}.legacy.pth']
    with np.load(folder / f'{case}.npz') as npz:
        return [f for f in files if f.exists()], npz['input_nchw'], npz['output_nchw']


@pytest.mark.parametrize('case', list(CASES))
def test_official_network_gives_the_official_output(graph, fixtures_dir, case):
    files, x, expected = reference(fixtures_dir, case)
    index = json.loads((fixtures_dir / 'torch_reference' / 'index.json').read_text())
    network = build(case)
    inputs = tf1.placeholder(tf.float32, [None, None, None, x.shape[1]])
    outputs = network(inputs, training=False)  # the official eval mode
    if 'params' in index[case]:
        assert network.num_params == index[case]['params']
    assert np.abs(expected).max() > 1e-3  # a signal far above the tolerance
    with tf1.Session() as sess:
        for path in files[-1:]:  # the legacy format where there are both, as published
            sess.run(tf1.global_variables_initializer())
            torch_weights.load_into(sess, network, str(path))
            result = sess.run(outputs, {inputs: x.transpose(0, 2, 3, 1)}).transpose(0, 3, 1, 2)
            assert result.shape == expected.shape
            assert np.abs(result - expected).max() < 1e-5, path.name


def test_module_prefix_and_old_instance_stats_are_accepted(graph, fixtures_dir):
    files, _, _ = reference(fixtures_dir, 'resnet_6blocks_ngf8_old_instance_stats')
    state = pth.load(files[0])
    assert any(key.endswith('running_mean') for key in state)
    network = build('resnet_6blocks_ngf8')
    network(tf1.placeholder(tf.float32, [None, 32, 32, 3]))
    plain = torch_weights.convert(state, network)
    wrapped = torch_weights.convert(collections.OrderedDict(
        (f'module.{key}', value) for key, value in state.items()), network)  # DataParallel
    assert len(plain) == len(network.global_variables) == 36
    for variable, value in plain.items():
        assert np.array_equal(wrapped[variable], value)
    conv = next(v for v in plain if v.op.name == 'N/input/conv/weights')
    assert np.array_equal(plain[conv], state['model.1.weight'].transpose(2, 3, 1, 0))


def loaded_network(fixtures_dir, case, **overrides):
    files, _, _ = reference(fixtures_dir, case)
    network = build(case, **overrides)
    network(tf1.placeholder(tf.float32, [None, 256, 256, CASES[case][2]]))
    return pth.load(files[0]), network


def test_another_architecture_names_the_key_and_both_shapes(graph, fixtures_dir):
    state, network = loaded_network(fixtures_dir, 'resnet_9blocks_ngf8', netG='resnet_6blocks')
    with pytest.raises(WeightsError) as error:
        torch_weights.convert(state, network, source='r9.pth')
    message = str(error.value)
    assert message.startswith('r9.pth does not fit N (resnet_6blocks, ngf 8')
    assert 'it has no model.16.weight (expected shape [32, 16, 3, 3])' in message
    assert 'it has model.16.conv_block.1.weight of shape [32, 32, 3, 3]' in message
    assert '\n' not in message


def test_other_width_or_norm(graph, fixtures_dir):
    state, network = loaded_network(fixtures_dir, 'patchgan_basic_ndf8', ndf=16)
    with pytest.raises(WeightsError, match=r'model.0.weight has shape \[8, 3, 4, 4\] in the '
                                           r'file, the network expects \[16, 3, 4, 4\]'):
        torch_weights.convert(state, network)
    with tf1.Graph().as_default():  # batch-norm weights for an instance-norm network
        state, network = loaded_network(fixtures_dir, 'patchgan_cond_ndf8_batch',
                                        norm='instance')
        with pytest.raises(WeightsError, match=r'it has no model.2.bias \(expected shape \[16\]'
                                               r'\) and 2 more; it has model.3.weight of shape'):
            torch_weights.convert(state, network)


def test_missing_and_extra_keys(graph, fixtures_dir):
    state, network = loaded_network(fixtures_dir, 'pixel_ndf8')
    missing = collections.OrderedDict((k, v) for k, v in state.items() if k != 'net.2.bias')
    with pytest.raises(WeightsError, match=r'it has no net.2.bias \(expected shape \[16\]\)$'):
        torch_weights.convert(missing, network)
    extra = collections.OrderedDict(state, **{'net.7.weight': np.zeros([1, 2, 1, 1])})
    with pytest.raises(WeightsError, match=r'it has net.7.weight of shape \[1, 2, 1, 1\]'):
        torch_weights.convert(extra, network)
    nested = collections.OrderedDict(state_dict=state)
    with pytest.raises(WeightsError, match='state_dict holds a OrderedDict, not a tensor'):
        torch_weights.convert(nested, network)


def test_norm_none_biases_the_official_convs_lack_are_zero(graph, fixtures_dir):
    """The official use_bias is False for norm 'none' (only InstanceNorm gets
    biases): its pixel discriminator then has none at net.2 and net.5."""
    state, network = loaded_network(fixtures_dir, 'pixel_ndf8', norm='none')
    official = collections.OrderedDict((k, v) for k, v in state.items()
                                       if k not in ('net.2.bias', 'net.5.bias'))
    values = {v.op.name: value for v, value in torch_weights.convert(official, network).items()}
    assert not values['N/layer_1/conv/biases'].any() and not values['N/output/biases'].any()
    assert np.array_equal(values['N/layer_0/biases'], state['net.0.bias'])
    with pytest.raises(WeightsError, match='it has net.2.bias'):
        torch_weights.convert(state, network)


def test_every_variable_of_every_kind_is_mapped(graph):
    """Dropout shifts the ResNet block's indices; the U-Net's innermost level has no down norm."""
    specs = [modules.ResnetGenerator('R', ngf=2, n_blocks=2, use_dropout=True, norm='batch'),
             modules.UnetGenerator('U', num_downs=5, ngf=2, norm='instance'),
             modules.NLayerDiscriminator('D', ndf=2, n_layers=2, norm='batch')]
    for network in specs:
        network(tf1.placeholder(tf.float32, [None, 32, 32, 3]))
        official, ours, _ = torch_weights.key_map(network)
        assert len(ours) == len(network.global_variables)
        assert set(ours.values()) == set(official)
    resnet, unet, patchgan = (list(torch_weights.key_map(n)[0]) for n in specs)
    assert 'model.11.conv_block.6.weight' in resnet and 'model.11.conv_block.7.running_var' \
        in resnet and 'model.11.conv_block.5.weight' not in resnet
    assert resnet[-2:] == ['model.19.weight', 'model.19.bias']  # 17 + n_blocks
    innermost = 'model.model.1' + '.model.3' * 3
    assert f'{innermost}.model.1.weight' in unet and f'{innermost}.model.4.weight' not in unet
    assert f'{innermost}.model.3.bias' in unet  # instance norm: the official convs have biases
    assert unet[-2:] == ['model.model.3.weight', 'model.model.3.bias']
    assert patchgan[-2:] == ['model.8.weight', 'model.8.bias']


@pytest.mark.parametrize('value, reason', [
    (np.nan, r'model.0.weight is not finite \(1 NaN, 0 Inf of 384 values\)'),
    (-np.inf, r'model.0.weight is not finite \(0 NaN, 1 Inf of 384 values\)'),
    (1e300, r'model.0.weight is not finite \(0 NaN, 1 Inf'),  # float64, beyond float32
    (-2 * checkpoints.MAX_WEIGHT, r'model.0.weight holds -2e\+04, above 10000 in absolute'),
])
def test_weights_not_finite_or_beyond_the_divergence_bound(graph, fixtures_dir, value, reason):
    """What train.py's WeightCheck would stop at (checkpoints.MAX_WEIGHT), refused at the import."""
    state, network = loaded_network(fixtures_dir, 'patchgan_basic_ndf8')
    bad = collections.OrderedDict(state)
    bad['model.0.weight'] = state['model.0.weight'].astype(np.float64)
    bad['model.0.weight'][7, 2, 3, 1] = value
    with pytest.raises(WeightsError, match=f'^d.pth: {reason}') as error:
        torch_weights.convert(bad, network, source='d.pth')
    assert '\n' not in str(error.value)


def test_running_statistics_need_only_be_finite(graph, fixtures_dir):
    """As the WeightCheck: every variable finite, only the trainable ones bounded."""
    state, network = loaded_network(fixtures_dir, 'patchgan_cond_ndf8_batch')
    large = collections.OrderedDict(state, **{'model.3.running_var': np.full(16, 3e4, np.float32)})
    values = {v.op.name: value for v, value in torch_weights.convert(large, network).items()}
    assert values['N/layer_1/norm/moving_variance'].max() == 3e4
    large['model.3.running_var'][5] = np.nan
    with pytest.raises(WeightsError, match=r'model.3.running_var is not finite \(1 NaN'):
        torch_weights.convert(large, network)


def test_keys_are_strings_each_once(graph, fixtures_dir):
    state, network = loaded_network(fixtures_dir, 'pixel_ndf8')
    for key, shown in ((3, '3'), (None, 'None'), (b'net.0.weight', 'a bytes'),
                       (7 ** 10 ** 5, 'a int')):  # no 84,510-digit repr
        other = collections.OrderedDict(list(state.items()) + [(key, np.zeros(1))])
        with pytest.raises(WeightsError, match=f'^p.pth: a key of type {type(key).__name__} '
                                               f'\\({shown}\\), not a string'):
            torch_weights.convert(other, network, source='p.pth')
    twice = collections.OrderedDict(state, **{'module.net.2.weight': state['net.2.weight']})
    with pytest.raises(WeightsError, match='^p.pth holds net.2.weight twice: as net.2.weight '
                                           'and as module.net.2.weight$'):
        torch_weights.convert(twice, network, source='p.pth')
    odd = collections.OrderedDict(state, **{'net.9.weight\nrm -rf': np.zeros(1)})
    with pytest.raises(WeightsError, match=r"it has 'net.9.weight\\nrm -rf' of shape \[1\]"):
        torch_weights.convert(odd, network)
