"""pix2pix and colorization: parameter counts, shapes, optimizers, the order
of the D and G updates, a tiny run on real facades, and the loss display."""

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import train_pipeline

from cyclegan_tf import config, model, modules, registry, train
from cyclegan_tf.data import pipeline
from cyclegan_tf.models import pix2pix

tf1 = tf.compat.v1

# A U-Net of 7 levels needs 128 px; ngf 4 keeps it fast.
TINY = dict(netG='unet_128', crop_size=128, load_size=128, ngf=4, ndf=4)


def tiny(cls=config.Pix2PixConfig, **overrides):
    return cls(**{**TINY, **overrides})


def pair(channels=(3, 3), size=(128, 128), batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.uniform(-1, 1, [batch, *size, nc]).astype(np.float32)
            for key, nc in zip('AB', channels)}


def session(graph, finalize=True):
    init = tf1.global_variables_initializer()
    if finalize:
        graph.finalize()
    sess = tf1.Session(graph=graph)
    sess.run(init)
    return sess


# ------------------------------------------------------------- structure


def test_parameter_counts_equal_the_reference(graph):
    m = registry.create(config.Pix2PixConfig())
    assert m.networks['G'].num_params == 54413955  # unet_256
    assert m.networks['D'].num_params == 2768705  # conditional PatchGAN, 6 input channels
    assert graph.get_tensor_by_name('inputs/real_A:0').shape.as_list() == [None, 256, 256, 3]


def test_names_follow_the_official_implementation(graph):
    m = registry.create(tiny())
    assert list(m.losses) == ['G_GAN', 'G_L1', 'D_real', 'D_fake']
    assert set(m.networks) == {'G', 'D'} and set(m.optimizers) == {'G', 'D'}
    assert m.optimizers['D'].get_name() == 'Adam_D'
    assert m.visual_rows == [['real_A', 'fake_B', 'real_B']]
    tops = {op.name.split('/')[0] for op in graph.get_operations()}
    assert tops == {'inputs', 'G', 'D', 'fake_B', 'real_AB', 'fake_AB', 'losses', 'optimizers',
                    'summaries', 'global_step', 'epoch'}


@pytest.mark.parametrize('netG, height, width, patches', [
    ('unet_256', 256, 256, (30, 30)),
    ('unet_128', 128, 128, (14, 14)),
    ('unet_128', 128, 256, (14, 30)),
])
def test_generator_keeps_the_size_and_discriminator_gives_a_patch_map(graph, netG, height,
                                                                      width, patches):
    cfg = config.Pix2PixConfig(netG=netG, ngf=4, ndf=4)
    G, D = modules.define_G(cfg, 'G'), modules.define_D(cfg, 'D', input_nc=6)
    real_A = tf1.placeholder(tf.float32, [None, height, width, 3])
    fake_B = G(real_A)
    assert fake_B.shape.as_list() == [None, height, width, 3]
    assert D(tf.concat([real_A, fake_B], -1)).shape.as_list() == [None, *patches, 1]


def test_non_square_images_train(graph):
    m = registry.create(tiny(preprocess='none'))
    assert m.inputs['A'].shape.as_list() == [None, None, None, 3]
    sess = session(graph)
    result = m.train_step(sess, pair(size=(128, 256)), visuals=True)
    assert result['visuals']['fake_B'].shape == (2, 128, 256, 3)
    assert all(math.isfinite(v) for v in result['losses'].values())


@pytest.mark.parametrize('netG, crop_size, multiple', [('unet_128', 96, 128),
                                                       ('unet_256', 128, 256)])
def test_sizes_the_unet_cannot_take_fail_at_build_time(graph, netG, crop_size, multiple):
    with pytest.raises(ValueError, match=f'multiple of {multiple}, got {crop_size}'):
        registry.create(tiny(netG=netG, crop_size=crop_size, load_size=crop_size))


# ---------------------------------------------------------- optimization


def test_optimizers_are_restricted_to_their_networks(graph):
    m = registry.create(tiny())
    G, D = m.networks['G'], m.networks['D']
    assert m.var_lists['G'] == G.variables and m.var_lists['D'] == D.variables
    assert all(v.name.startswith('G/') for v in m.var_lists['G'])
    assert all(v.name.startswith('D/') for v in m.var_lists['D'])
    owned = [v.name for variables in m.var_lists.values() for v in variables]
    assert sorted(owned) == sorted(v.name for v in tf1.trainable_variables())


def test_the_D_update_alone_changes_only_D(graph):
    m = registry.create(tiny())
    G, D = m.networks['G'], m.networks['D']
    sess = session(graph)
    before_G, before_D = sess.run(G.global_variables), sess.run(D.variables)
    sess.run(m.updates['D'], m.feed_dict(pair()))
    assert all(np.array_equal(a, b) for a, b in zip(before_G, sess.run(G.global_variables)))
    changed = [not np.array_equal(a, b) for a, b in zip(before_D, sess.run(D.variables))]
    assert all(changed)


def test_G_is_judged_by_the_updated_D(graph):
    """The official order: optimizer_D.step() before backward_G. The G_GAN
    loss of a train step must equal L_GAN(D(A, G(A))) computed with the
    starting G and the D after one D update (two session runs), and differ
    from the one computed with the starting D."""
    m = registry.create(tiny(no_dropout=True, lr=0.01))  # no dropout: G(A) is reproducible
    G, D = m.networks['G'], m.networks['D']
    real_A = m.inputs['A']
    reference = model.gan_loss(D(tf.concat([real_A, G(real_A)], -1)), True, 'vanilla')
    feed = m.feed_dict(pair())
    one_run = session(graph, finalize=False)
    two_runs = session(graph)  # a session of its own: the same initial values
    G_GAN = m.train_step(one_run, pair())['losses']['G_GAN']
    with_starting_D = two_runs.run(reference, feed)
    two_runs.run(m.updates['D'], feed)
    with_updated_D = two_runs.run(reference, feed)
    assert abs(with_updated_D - with_starting_D) > 0.05
    np.testing.assert_allclose(G_GAN, with_updated_D, rtol=1e-5)


def test_one_global_step_per_iteration_and_batch_norm_averages_move(graph):
    m = registry.create(tiny())
    sess = session(graph)
    averages = [v for v in m.networks['G'].global_variables if 'moving_mean' in v.name]
    before = sess.run(averages)
    m.train_step(sess, pair())
    m.train_step(sess, pair(seed=1))
    assert sess.run(m.global_step) == 2
    assert all(not np.array_equal(a, b) for a, b in zip(before, sess.run(averages)))


@pytest.mark.parametrize('gan_mode, names', [('lsgan', {'D_real', 'D_fake'}),
                                             ('wgangp', {'D_real', 'D_fake', 'D_gp'})])
def test_other_gan_objectives(graph, gan_mode, names):
    m = registry.create(tiny(gan_mode=gan_mode))
    assert set(m.losses) == {'G_GAN', 'G_L1'} | names
    losses = m.train_step(session(graph), pair())['losses']
    assert all(math.isfinite(v) for v in losses.values())


# -------------------------------------------------------------- end to end


def test_tiny_facades_run_lowers_the_L1_loss_then_translates(tmp_path, sample_data):
    """Labels to photos (BtoA, as the official facades command) on the 4
    training pairs of facades_tiny (32 px halves, resized to 128 px), all in
    each batch so that the loss curve is smooth; then the inference graph
    restored from the checkpoint translates the test split."""
    root = str(sample_data / 'facades_tiny')
    cfg = tiny(direction='BtoA', batch_size=4, lr=0.002, no_flip=True, num_threads=1)
    with tf.Graph().as_default() as g:
        pipeline = train_pipeline(cfg, 'train', root=root)
        m = registry.create(cfg)
        saver = tf1.train.Saver()
        sess = session(g)
        assert pipeline.steps_per_epoch == 1
        l1 = [m.train_step(sess, sess.run(pipeline.next_batch))['losses']['G_L1']
              for _ in range(24)]
        saver.save(sess, str(tmp_path / 'model'))
    assert np.mean(l1[-3:]) < 0.75 * np.mean(l1[:3])

    with tf.Graph().as_default() as g:
        test = train_pipeline(cfg.replace(batch_size=2), 'test', root=root, epochs=1)
        inputs, outputs = pix2pix.Pix2Pix.build_inference(cfg, training=True)
        restore = tf1.train.Saver(tf1.global_variables(scope='G/'))
        with tf1.Session() as sess:
            restore.restore(sess, str(tmp_path / 'model'))
            batch = sess.run(test.next_batch)
            fake_B = sess.run(outputs['fake_B'], {inputs['A']: batch['A']})
    assert fake_B.shape == (2, 128, 128, 3) and np.abs(fake_B).max() <= 1
    assert np.mean(np.abs(fake_B - batch['B'])) < 0.9


def test_inference_runs_like_training_unless_eval():
    cfg = tiny()
    x = pair(batch=1)['A']
    with tf.Graph().as_default():
        inputs, outputs = pix2pix.Pix2Pix.build_inference(cfg, training=True)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            runs = [sess.run(outputs['fake_B'], {inputs['A']: x}) for _ in range(2)]
    assert not np.allclose(*runs)  # dropout is on
    with tf.Graph().as_default():
        inputs, outputs = pix2pix.Pix2Pix.build_inference(cfg, training=False)
        assert set(inputs) == {'A'} and set(outputs) == {'fake_B'}
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            runs = [sess.run(outputs['fake_B'], {inputs['A']: x}) for _ in range(2)]
    np.testing.assert_array_equal(*runs)


# ------------------------------------------------------------ colorization


def test_colorization_translates_L_to_ab_and_shows_rgb(graph):
    cfg = tiny(config.ColorizationConfig)
    assert (cfg.model, cfg.input_nc, cfg.output_nc) == ('colorization', 1, 2)
    m = registry.create(cfg)
    assert m.inputs['A'].shape[-1] == 1 and m.inputs['B'].shape[-1] == 2
    assert m.networks['D'].input_nc == 3
    assert m.visual_rows == [['real_A', 'fake_B_rgb', 'real_B_rgb']]
    batch = pair(channels=(1, 2))
    batch['B'] *= 0.5  # ab / 110 of real colours stays well inside [-1, 1]
    visuals = m.train_step(session(graph), batch, visuals=True)['visuals']
    assert all(v.shape == (2, 128, 128, 3) and np.abs(v).max() <= 1 for v in visuals.values())
    np.testing.assert_allclose(visuals['real_B_rgb'],
                               pipeline.colorization_to_rgb(batch['A'], batch['B']), atol=2e-3)
    np.testing.assert_array_equal(visuals['real_A'][..., 2], batch['A'][..., 0])


def test_colorization_trains_on_a_folder_of_photos(graph, sample_data):
    """The data layer's L and ab batches (here from an unaligned folder,
    both domains read) feed the model; the real photo comes back in RGB."""
    cfg = tiny(config.ColorizationConfig, batch_size=2, num_threads=1)
    pipeline = train_pipeline(cfg, 'train', root=str(sample_data / 'horse2zebra_tiny'))
    m = registry.create(cfg)
    sess = session(graph)
    batch = sess.run(pipeline.next_batch)
    assert batch['A'].shape == (2, 128, 128, 1) and batch['B'].shape == (2, 128, 128, 2)
    results = [m.train_step(sess, sess.run(pipeline.next_batch), visuals=True) for _ in range(2)]
    assert all(math.isfinite(v) for r in results for v in r['losses'].values())
    photo = results[-1]['visuals']['real_B_rgb']
    assert photo.shape == (2, 128, 128, 3) and photo.std() > 0.1


def test_colorization_needs_one_channel_in_and_two_out(graph):
    with pytest.raises(ValueError, match='input_nc=1 and output_nc=2'):
        registry.create(tiny(config.ColorizationConfig, output_nc=3))


def test_colorization_inference_gives_ab_and_rgb(graph):
    inputs, outputs = pix2pix.Colorization.build_inference(tiny(config.ColorizationConfig))
    assert inputs['A'].shape.as_list() == [None, None, None, 1]
    assert outputs['fake_B'].shape[-1] == 2 and outputs['fake_B_rgb'].shape[-1] == 3


# ------------------------------------------------------------ loss display


def test_loss_averager_is_a_debiased_moving_average():
    averager = train.LossAverager(decay=0.5)
    assert averager.update({'G': 4.0}) == {'G': 4.0}  # the first value as it is
    assert averager.update({'G': 2.0, 'D': 1.0}) == {'G': (0.5 * 4 + 2) / 1.5, 'D': 1.0}
    values = np.random.default_rng(0).normal(3.0, 1.0, 2000)
    steady = train.LossAverager(decay=0.98)
    for value in values:
        smoothed = steady.update({'L': value})['L']
    assert abs(smoothed - 3.0) < 0.5 and np.std(values[-50:]) > 0.5
    assert train.LossAverager(decay=0.0).update({'L': 7.0}) == {'L': 7.0}
    steady.reset()
    assert steady.averages == {}
    with pytest.raises(ValueError, match='decay'):
        train.LossAverager(decay=1.0)
