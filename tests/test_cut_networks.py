"""CUT / FastCUT networks and losses: the official code's outputs from its weights.

Every network of ../shared/fixtures/cut_reference (made with the official
taesungp/contrastive-unpaired-translation code) is built here with the
official call's settings, given the official state dict read by pth.py (both
.pth formats) through torch_weights, and run as the official eval mode; its
outputs, its intermediate features, the patch sampler's samples and the
PatchNCE losses match the official values. Without the fixtures, the shape,
count, reuse and error-path tests still run.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import modules, ops
from cyclegan_tf.interop import pth, torch_weights
from cyclegan_tf.interop.torch_weights import WeightsError

tf1 = tf.compat.v1

NCE_LAYERS = (0, 4, 8, 12, 16)  # the official --nce_layers default
FORMATS = ('.pth', '.legacy.pth')
# Fixture case -> settings of the official call (index.json), ngf / ndf 8, instance norm.
G_CASES = {
    'cut_G_resnet_9blocks_ngf8': dict(n_blocks=9),
    'cut_G_resnet_6blocks_ngf8_batch2': dict(n_blocks=6),
    'cut_G_resnet_9blocks_ngf8_noantialias': dict(n_blocks=9, no_antialias=True,
                                                  no_antialias_up=True),
}
D_CASES = {'cut_D_basic_ndf8': {}, 'cut_D_basic_ndf8_noantialias': dict(no_antialias=True)}


def images(height, width, channels=3, batch=None):
    return tf1.placeholder(tf.float32, [batch, height, width, channels])


def nhwc(array):
    return array.transpose(0, 2, 3, 1)


def max_error(result, expected, what):
    """max |result - expected|, asserted below 1e-5 times the larger of 1 and
    max |expected|: float32 rounding grows with the values, and the residual
    blocks' features reach 10 (where the official and our convs, both float32,
    differ by up to 2e-5); outputs in [-1, 1] and the first features meet 1e-5."""
    assert result.shape == expected.shape, what
    assert np.abs(expected).max() > 1e-3, what  # a signal far above the tolerance
    error = float(np.abs(result - expected).max())
    assert error <= 1e-5 * max(1.0, float(np.abs(expected).max())), (what, error)
    return error


def reference(fixtures_dir, case):
    folder = fixtures_dir / 'cut_reference'
    index = json.loads((folder / 'index.json').read_text())
    return folder, index, np.load(folder / f'{case}.npz')


@pytest.mark.parametrize('suffix', FORMATS)
@pytest.mark.parametrize('case', list(G_CASES))
def test_generator_output_and_features_are_the_official(graph, fixtures_dir, case, suffix):
    folder, index, arrays = reference(fixtures_dir, case)
    G = modules.CUTResnetGenerator('G', ngf=8, **G_CASES[case])
    x = images(None, None)
    y, features = G(x, training=False, nce_layers=NCE_LAYERS)  # the official eval mode
    assert G.num_params == index['cases'][case]['params']
    state = pth.load(folder / f'{case}{suffix}')
    assert sorted(torch_weights.fixed_buffers(G)) == sorted(index['cases'][case]['buffers'])
    with tf1.Session() as sess:
        assert torch_weights.load_into(sess, G, state) + len(torch_weights.fixed_buffers(G)) \
            == index['cases'][case]['state_dict_keys'] == len(state)
        values = sess.run([y, *features], {x: nhwc(arrays['input_nchw'])})
    max_error(values[0], nhwc(arrays['output_nchw']), 'output')
    for layer, value in zip(NCE_LAYERS, values[1:]):
        max_error(value, nhwc(arrays[f'feat_{layer}_nchw']), f'feature {layer}')


@pytest.mark.parametrize('suffix', FORMATS)
@pytest.mark.parametrize('case', list(D_CASES))
def test_discriminator_is_the_official(graph, fixtures_dir, case, suffix):
    folder, index, arrays = reference(fixtures_dir, case)
    D = modules.CUTNLayerDiscriminator('D', ndf=8, **D_CASES[case])
    x = images(None, None)
    logits = D(x, training=False)
    assert D.num_params == index['cases'][case]['params']
    with tf1.Session() as sess:
        torch_weights.load_into(sess, D, pth.load(folder / f'{case}{suffix}'))
        value = sess.run(logits, {x: nhwc(arrays['input_nchw'])})
    error = max_error(value, nhwc(arrays['output_nchw']), case)
    assert error < 1e-5 * np.abs(arrays['output_nchw']).max()  # logits of about 1e-3: relative too
    assert D.output_size(64) == value.shape[1] == 6


@pytest.mark.parametrize('suffix', FORMATS)
def test_patch_sampler_is_the_official(graph, fixtures_dir, suffix):
    case = 'cut_F_mlp_sample_nc256'
    folder, index, arrays = reference(fixtures_dir, case)
    F = modules.PatchSampleF('F', nc=256, num_patches=index['cases'][case]['num_patches'])
    features = [tf.constant(nhwc(arrays[f'feat_{layer}_nchw'])) for layer in NCE_LAYERS]
    ids = [arrays[f'patch_ids_{layer}'] for layer in NCE_LAYERS]
    samples, used = F(features, patch_ids=ids)
    assert F.num_params == index['cases'][case]['params']
    with tf1.Session() as sess:
        assert torch_weights.load_into(sess, F, pth.load(folder / f'{case}{suffix}')) == 20
        values, used = sess.run([samples, used])
    for layer, value, given, got in zip(NCE_LAYERS, values, ids, used):
        assert np.array_equal(got, given)
        max_error(value, arrays[f'out_{layer}'], f'layer {layer}')
        # |x| / (|x| + 1e-7), the official Normalize: below 1, as the MLP's outputs are small.
        assert 0.9 < np.linalg.norm(value, axis=1).min() <= np.linalg.norm(value, axis=1).max() < 1


@pytest.mark.parametrize('case, batch_size, all_negatives', [
    ('bs1_sameimage', 1, False), ('bs2_sameimage', 2, False), ('bs2_allneg', 2, True)])
def test_patch_nce_loss_is_the_official(graph, fixtures_dir, case, batch_size, all_negatives):
    with np.load(fixtures_dir / 'cut_reference' / 'patchnce.npz') as arrays:
        feat_q, feat_k = (tf.constant(arrays[f'{case}_feat_{kind}']) for kind in 'qk')
        expected = arrays[f'{case}_loss']
    loss = ops.patch_nce_loss(feat_q, feat_k, batch_size=batch_size, nce_T=0.07,
                              nce_includes_all_negatives_from_minibatch=all_negatives)
    assert tf.gradients(loss, feat_k) == [None]  # the keys are detached
    with tf1.Session() as sess:
        value = sess.run(loss)
    assert value.shape == expected.shape
    assert np.abs(value / expected - 1).max() < 1e-5


def test_patch_nce_negatives_and_mask(graph):
    """Identical queries and keys: logits 1 / T for the positive, 0 for the
    other keys of one image (orthogonal) and -10 / T for the masked diagonal."""
    feat = tf.constant(np.eye(4, 8, dtype=np.float32))
    per_image = ops.patch_nce_loss(feat, feat, batch_size=2, nce_T=0.5)
    whole_batch = ops.patch_nce_loss(feat, feat, batch_size=2, nce_T=0.5,
                                     nce_includes_all_negatives_from_minibatch=True)
    with tf1.Session() as sess:
        per_image, whole_batch = sess.run([per_image, whole_batch])
    for value, others in ((per_image, 1), (whole_batch, 3)):
        logits = np.array([2.0, -20.0] + [0.0] * others)
        assert np.allclose(value, np.log(np.exp(logits).sum()) - 2.0)
    with pytest.raises(ValueError, match='4 patches do not split into 3 images'):
        ops.patch_nce_loss(feat, feat, batch_size=3)


def _cut_step_state(arrays, network):
    prefix = f'before/{network}.'
    return {key[len(prefix):]: arrays[key] for key in arrays.files if key.startswith(prefix)}


def _nce(G, F, source, target, ids):
    """The official calculate_NCE_loss(src, tgt) with the patch ids F drew."""
    feat_k = G(source, nce_layers=NCE_LAYERS, encode_only=True)
    feat_q = G(target, nce_layers=NCE_LAYERS, encode_only=True)
    pool_k, _ = F(feat_k, patch_ids=ids)
    pool_q, _ = F(feat_q, patch_ids=ids)
    return tf.add_n([tf.reduce_mean(ops.patch_nce_loss(q, k, batch_size=1))
                     for q, k in zip(pool_q, pool_k)]) / len(NCE_LAYERS)


def test_the_cut_step_losses_from_its_weights(graph, fixtures_dir):
    """cut_step.npz's forward pass (CUT mode, nce_idt): fake_B, idt_B and the
    NCE, NCE_Y, D_real and D_fake losses from the weights before the step."""
    folder, index, arrays = reference(fixtures_dir, 'cut_step')
    losses = index['cut_step']['losses']
    real_A, real_B = (tf.constant(nhwc(arrays[f'real_{d}_nchw'])) for d in 'AB')
    G, D = modules.CUTResnetGenerator('G', ngf=8), modules.CUTNLayerDiscriminator('D', ndf=8)
    F = modules.PatchSampleF('F', num_patches=256)
    fake = G(tf.concat([real_A, real_B], 0))  # the official forward: G(cat(real_A, real_B))
    fake_B, idt_B = fake[:1], fake[1:]
    nce = _nce(G, F, real_A, fake_B, [arrays[f'nce_X_patch_ids_{i}'] for i in NCE_LAYERS])
    nce_Y = _nce(G, F, real_B, idt_B, [arrays[f'nce_Y_patch_ids_{i}'] for i in NCE_LAYERS])
    d_fake = tf.reduce_mean(tf.square(D(fake_B)))  # lsgan
    d_real = tf.reduce_mean(tf.square(D(real_B) - 1))
    with tf1.Session() as sess:
        for network, name in ((G, 'G'), (D, 'D'), (F, 'F')):
            torch_weights.load_into(sess, network, _cut_step_state(arrays, name))
        values = sess.run([fake_B, idt_B, nce, nce_Y, d_real, d_fake])
    max_error(values[0], nhwc(arrays['fake_B_nchw']), 'fake_B')
    max_error(values[1], nhwc(arrays['idt_B_nchw']), 'idt_B')
    for value, name in zip(values[2:], ('NCE', 'NCE_Y', 'D_real', 'D_fake')):
        assert abs(value / losses[name] - 1) < 1e-5, name  # D_fake is 5.8e-9: relative


def test_parameter_counts_at_the_official_defaults(graph):
    """ngf 64, ndf 64, 9 blocks, 3 channels, nce_layers 0,4,8,12,16, netF_nc 256:
    the counts do not depend on the image size."""
    G, D, F = (modules.CUTResnetGenerator('G'), modules.CUTNLayerDiscriminator('D'),
               modules.PatchSampleF('F'))
    _, features = G(images(8, 8), nce_layers=NCE_LAYERS)
    D(images(24, 24))
    F(features)
    assert [f.shape[-1] for f in features] == [3, 128, 256, 256, 256]
    assert (G.num_params, D.num_params, F.num_params) == (11378179, 2764737, 560384)
    for network in (G, D, F):  # top-level scopes named after the networks
        assert {v.op.name.split('/')[0] for v in network.global_variables} == {network.name}
    assert not tf1.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES, scope='.*blur')


def test_calling_again_reuses_the_variables(graph):
    G = modules.CUTResnetGenerator('G', ngf=4, n_blocks=2)
    D = modules.CUTNLayerDiscriminator('D', ndf=4, n_layers=2)
    F = modules.PatchSampleF('F', nc=8, num_patches=5)
    fake, features = G(images(16, 16), nce_layers=[0, 4, 8])
    D(fake)
    F(features)
    count = len(tf1.global_variables())
    assert count == len(G.variables) + len(D.variables) + len(F.variables)

    def ops_under(block):
        return sum(op.name.startswith(f'G/{block}') for op in graph.get_operations())  # _1 ...

    built = ops_under('down_2'), ops_under('res_block_0'), ops_under('up_1')
    again = G(images(32, 24, batch=2), nce_layers=[0, 4, 8], encode_only=True)
    D(images(24, 32))
    F(again)
    assert len(tf1.global_variables()) == count
    # encode_only stops after the last feature (down_2's conv): no second decoder.
    assert ops_under('down_2') > built[0]
    assert (ops_under('res_block_0'), ops_under('up_1')) == built[1:]
    with pytest.raises(ValueError, match="network named 'G' already exists"):
        modules.CUTResnetGenerator('G')


def test_antialiased_generator_names_and_official_keys(graph):
    """Anti-aliased downsampling, transposed convs up (no_antialias_up): the
    official indices shift by the blurs, which the layer record follows."""
    G = modules.CUTResnetGenerator('G', ngf=4, n_blocks=2, no_antialias_up=True)
    G(images(16, 16))
    assert [v.op.name for v in G.variables if v.op.name.endswith('weights')] == [
        'G/input/conv/weights', 'G/down_1/conv/weights', 'G/down_2/conv/weights',
        'G/res_block_0/conv_0/weights', 'G/res_block_0/conv_1/weights',
        'G/res_block_1/conv_0/weights', 'G/res_block_1/conv_1/weights',
        'G/up_1/deconv/weights', 'G/up_2/deconv/weights', 'G/output/weights']
    official, ours, _ = torch_weights.key_map(G)
    assert [key for key in official if key.endswith('weight')] == [
        'model.1.weight', 'model.4.weight', 'model.8.weight', 'model.12.conv_block.1.weight',
        'model.12.conv_block.5.weight', 'model.13.conv_block.1.weight',
        'model.13.conv_block.5.weight', 'model.14.weight', 'model.17.weight', 'model.21.weight']
    assert len(ours) == len(G.global_variables)
    assert list(torch_weights.fixed_buffers(G)) == ['model.7.filt', 'model.11.filt']
    assert torch_weights.fixed_buffers(G)['model.11.filt'].shape == (16, 1, 3, 3)


def _d_state(fixtures_dir):
    D = modules.CUTNLayerDiscriminator('D', ndf=8)
    D(images(64, 64))
    return D, pth.load(fixtures_dir / 'cut_reference' / 'cut_D_basic_ndf8.pth')


def test_filters_other_than_the_fixed_ones_are_refused(graph, fixtures_dir):
    D, state = _d_state(fixtures_dir)
    assert np.array_equal(state['model.6.filt'][5, 0], ops.DOWNSAMPLE_FILTER)
    other = dict(state, **{'model.6.filt': state['model.6.filt'] * 1.01})
    with pytest.raises(WeightsError, match=r'd.pth does not fit D \(CUT 3-layer PatchGAN, ndf 8'
                                           r'.*: model.6.filt is not the fixed filter of the '
                                           r'official Downsample'):
        torch_weights.convert(other, D, source='d.pth')
    missing = {key: value for key, value in state.items() if key != 'model.2.filt'}
    with pytest.raises(WeightsError, match=r'it has no model.2.filt \(the fixed blur filter, '
                                           r'shape \[8, 1, 3, 3\]\)'):
        torch_weights.convert(missing, D)
    with pytest.raises(WeightsError, match=r'model.10.filt has shape \[1, 1, 3, 3\]'):
        torch_weights.convert(dict(state, **{'model.10.filt': state['model.10.filt'][:1]}), D)
    values = torch_weights.convert(state, D)
    assert len(values) == len(D.global_variables) == 10  # the filters are not variables


def test_weights_of_the_other_variant_are_refused(graph, fixtures_dir):
    G = modules.CUTResnetGenerator('G', ngf=8, no_antialias=True, no_antialias_up=True)
    G(images(32, 32))
    state = pth.load(fixtures_dir / 'cut_reference' / 'cut_G_resnet_9blocks_ngf8.pth')
    with pytest.raises(WeightsError, match=r'no_antialias True.*it has no model.7.weight'):
        torch_weights.convert(state, G)


def test_blur_filters_are_constants_of_the_official_shapes(graph):
    x = tf.constant(np.random.RandomState(0).rand(2, 7, 10, 3).astype(np.float32))
    down, up = ops.blur_downsample(x), ops.blur_upsample(x)
    flat = ops.blur_upsample(tf.ones([1, 3, 5, 2]))
    assert down.shape.as_list() == [2, 4, 5, 3] and up.shape.as_list() == [2, 14, 20, 3]
    assert not tf1.global_variables()
    grads = tf.gradients(tf.reduce_sum(down) + tf.reduce_sum(up), x)
    with tf1.Session() as sess:
        down, up, flat, grads = sess.run([down, up, flat, grads])
    assert np.allclose(flat, 1)  # an interpolation: a constant stays constant
    assert down.min() >= 0 and down.max() <= 1 and np.isfinite(grads).all()
    assert np.array_equal(ops.DOWNSAMPLE_FILTER * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert np.array_equal(ops.UPSAMPLE_FILTER * 16, np.outer([1, 3, 3, 1], [1, 3, 3, 1]))


def test_nce_layers_must_be_increasing_indices_and_encode_only_comes_later(graph):
    G = modules.CUTResnetGenerator('G', ngf=4, n_blocks=2)
    assert G.num_layers == 25  # input 4, down 2 x 4, 2 blocks, up 2 x 4, output 3
    with pytest.raises(ValueError, match='the first call must build the whole network'):
        G(images(16, 16), nce_layers=[0, 4], encode_only=True)
    for layers in ([4, 0], [0, 0], [0, 25], [-1]):
        with pytest.raises(ValueError, match=r'increasing layer indices in 0 ... 24'):
            G(images(16, 16), nce_layers=layers)
    assert isinstance(G(images(16, 16)), tf.Tensor)
    assert len(G.official_layers) == 25 and G.official_layers[4].scope == 'down_1/conv'
    with pytest.raises(ValueError, match='encode_only needs nce_layers'):
        G(images(16, 16), encode_only=True)


def test_patch_sampler_draws_ids_shared_by_the_batch(graph):
    F = modules.PatchSampleF('F', nc=8, num_patches=6)
    small, large = images(2, 2, 4, batch=3), images(8, 4, 5, batch=3)
    samples, ids = F([small, large])
    assert [s.shape.as_list() for s in samples] == [[12, 8], [18, 8]]
    again, _ = F([small, large], patch_ids=ids)
    feed = {small: np.random.rand(3, 2, 2, 4), large: np.random.rand(3, 8, 4, 5)}
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        (first, second), (ids_small, ids_large), (third, fourth) = sess.run(
            [samples, ids, again], feed)
    assert sorted(ids_small) == [0, 1, 2, 3]  # min(num_patches, H * W), a permutation
    assert len(set(ids_large)) == 6 and 0 <= ids_large.min() and ids_large.max() < 32
    assert first.shape == (12, 8) and second.shape == (18, 8)
    assert np.allclose(first, third) and np.allclose(second, fourth)
    with pytest.raises(ValueError, match=r'made for features of \[4, 5\] channels, got \[4\]'):
        F([small])


def test_patch_sampler_without_mlp_or_patches(graph):
    plain = modules.PatchSampleF('F', use_mlp=False, num_patches=3)
    every = modules.PatchSampleF('F_all', nc=4, num_patches=0)
    x = tf.constant(np.random.RandomState(1).randn(2, 3, 5, 6).astype(np.float32))
    (sample,), _ = plain([x])
    (maps,), (ids,) = every([x])
    assert not plain.variables and ids is None
    assert sample.shape.as_list() == [6, 6] and maps.shape.as_list() == [2, 3, 5, 4]
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        sample, maps = sess.run([sample, maps])
    assert np.allclose(np.linalg.norm(sample, axis=1), 1, atol=1e-6)
    # The official Normalize over dim 1 of [B, H * W, nc]: each channel over the positions.
    norms = np.linalg.norm(maps.reshape(2, 15, 4), axis=1)
    assert 0.999 < norms.min() and norms.max() < 1  # |x| / (|x| + 1e-7)
