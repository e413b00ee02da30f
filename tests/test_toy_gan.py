"""The toy 2-D GAN: its config, MLPs, target, graph, a short run that learns
the target's mean and covariance, the figure and the inference graph."""

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import config, modules, registry
from cyclegan_tf.models import toy_gan

tf1 = tf.compat.v1

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def session(graph):
    init = tf1.global_variables_initializer()
    graph.finalize()
    sess = tf1.Session(graph=graph)
    sess.run(init)
    return sess


def moments(points):
    return points.mean(0), np.cov(points.T)


# ---------------------------------------------------------------- config


def test_config_defaults_and_parsed_target():
    cfg = config.ToyGANConfig()
    assert (cfg.model, cfg.gan_mode, cfg.batch_size, cfg.toy_modes) == ('toy_gan', 'vanilla',
                                                                        256, 0)
    assert cfg.target_mean == (1.0, 1.0) and cfg.target_cov == ((1.0, 0.5), (0.5, 1.0))
    assert cfg.run_name == 'gaussian_toy_gan'
    assert config.ToyGANConfig(toy_modes=8).run_name == 'ring8_toy_gan'
    assert registry.get('toy_gan').config is config.ToyGANConfig
    assert 'crop_size' not in config.ToyGANConfig.options()


@pytest.mark.parametrize('overrides, message', [
    (dict(toy_mean='1'), 'toy_mean must be 2 comma-separated numbers'),
    (dict(toy_mean='a,b'), 'toy_mean must be 2'),
    (dict(toy_cov='1,2,3,4'), 'symmetric positive definite'),
    (dict(toy_cov='1,2,2,1'), 'symmetric positive definite'),
    (dict(toy_mode_std=0.0), 'toy_mode_std must be a finite number > 0'),
])
def test_bad_targets_fail_when_the_config_is_built(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.ToyGANConfig(**overrides)


def test_flags_build_the_toy_config():
    from absl import flags
    cfg = registry.from_flags(flags.FlagValues(), ['train.py', '--model', 'toy_gan',
                                                   '--toy_mean', '2,-1', '--toy_modes', '8'])
    assert cfg == config.ToyGANConfig(toy_mean='2,-1', toy_modes=8)


# ------------------------------------------------------------ networks


def test_mlp_shapes_names_and_explicit_reuse(graph):
    D = modules.MLP('D', input_dim=2, output_dim=1, hidden_units=16, hidden_layers=2)
    logits = D(tf1.placeholder(tf.float32, [None, 2]))
    D(tf1.placeholder(tf.float32, [7, 2]))  # the second call reuses the variables
    assert logits.shape.as_list() == [None, 1]
    assert [v.name for v in D.variables] == [
        'D/hidden_0/weights:0', 'D/hidden_0/biases:0', 'D/hidden_1/weights:0',
        'D/hidden_1/biases:0', 'D/output/weights:0', 'D/output/biases:0']
    assert D.num_params == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    with pytest.raises(ValueError, match=r'takes \[N, 2\] vectors'):
        D(tf1.placeholder(tf.float32, [None, 3]))
    with pytest.raises(ValueError, match='already exists'):
        modules.MLP('D', input_dim=2, output_dim=1)


def test_graph_networks_losses_and_optimizers(graph):
    m = registry.create(config.ToyGANConfig())
    assert set(m.networks) == {'G', 'D'} and list(m.losses) == ['G', 'D_real', 'D_fake']
    assert m.inputs['real'].shape.as_list() == [None, 2]
    assert m.inputs['z'].shape.as_list() == [None, 2]
    assert m.visuals == {} and set(m.metrics) == {'D_accuracy', 'D_accuracy_real',
                                                  'D_accuracy_fake'}
    for name, network in m.networks.items():
        assert m.var_lists[name] == network.variables
        assert all(v.name.startswith(name + '/') for v in network.variables)
    assert len(m.var_lists['G']) + len(m.var_lists['D']) == len(tf1.trainable_variables())
    tops = {op.name.split('/')[0] for op in graph.get_operations()}
    assert tops == {'inputs', 'G', 'D', 'fake', 'losses', 'metrics', 'optimizers',
                    'summaries', 'global_step', 'epoch'}


# ------------------------------------------------------------------ data


@pytest.mark.parametrize('overrides', [{}, dict(toy_modes=8, toy_mean='0,0')])
def test_target_samples_have_the_stated_moments(overrides):
    target = toy_gan.ToyTarget.from_config(config.ToyGANConfig(**overrides))
    points = target.sample(np.random.default_rng(0), 200000)
    mean, cov = moments(points)
    assert points.dtype == np.float32 and points.shape == (200000, 2)
    np.testing.assert_allclose(mean, target.mean, atol=0.02)
    np.testing.assert_allclose(cov, target.cov, atol=0.03)


def test_pipeline_serves_seeded_batches(graph):
    cfg = config.ToyGANConfig(batch_size=32, noise_dim=3)
    pipeline = toy_gan.ToyPipeline(cfg)
    assert pipeline.steps_per_epoch == cfg.steps_per_epoch
    assert pipeline.next_batch['z'].shape.as_list() == [32, 3]
    with tf1.Session() as sess:
        first, second = sess.run(pipeline.next_batch), sess.run(pipeline.next_batch)
    assert first['real'].shape == (32, 2) and not np.array_equal(first['z'], second['z'])
    with tf.Graph().as_default():
        again = toy_gan.ToyPipeline(cfg).sample_batch()
    np.testing.assert_array_equal(again['real'], first['real'])


# -------------------------------------------------------------- training


def test_a_short_run_learns_the_mean_and_covariance(graph):
    """The default config (3000 iterations, a few seconds): the generated
    points' mean and covariance end close to the target's, and D is left
    guessing."""
    cfg = config.ToyGANConfig(seed=0)
    m = registry.create(cfg)
    pipeline = toy_gan.ToyPipeline(cfg)
    sess = session(graph)
    target = pipeline.target

    def errors():
        mean, cov = moments(toy_gan.toy_samples(sess, cfg, m.inputs, m.outputs, num=20000))
        return (np.linalg.norm(mean - target.mean),
                np.linalg.norm(cov - target.cov) / np.linalg.norm(target.cov))

    start = errors()
    for epoch in range(cfg.n_epochs + cfg.n_epochs_decay):
        m.set_epoch(sess, epoch)
        for _ in range(pipeline.steps_per_epoch):
            m.train_step(sess, sess.run(pipeline.next_batch))
    mean_error, cov_error = errors()
    assert start[0] > 1.0 and mean_error < 0.2
    assert start[1] > 0.5 and cov_error < 0.35
    assert 0.35 < m.evaluate(sess)['D_accuracy'] < 0.65


@pytest.mark.parametrize('gan_mode', ['lsgan', 'wgangp'])
def test_other_objectives_train(graph, gan_mode):
    m = registry.create(config.ToyGANConfig(gan_mode=gan_mode))
    sess = session(graph)
    rng = np.random.default_rng(0)
    batch = {'real': rng.normal(size=[64, 2]).astype(np.float32),
             'z': rng.normal(size=[64, 2]).astype(np.float32)}
    losses = [m.train_step(sess, batch)['losses'] for _ in range(3)]
    assert all(np.isfinite(v) for step in losses for v in step.values())
    assert ('D_gp' in losses[0]) == (gan_mode == 'wgangp')


def test_evaluate_figure_and_summaries(graph):
    cfg = config.ToyGANConfig()
    m = registry.create(cfg)
    pipeline = toy_gan.ToyPipeline(cfg)
    sess = session(graph)
    result = m.train_step(sess, sess.run(pipeline.next_batch), summaries=True)
    tags = {v.tag for v in tf1.Summary.FromString(result['summary']).value}
    assert {'loss/G', 'loss/D_real', 'metric/D_accuracy', 'lr'} <= tags
    metrics = m.evaluate(sess, num=512)
    assert set(metrics) == set(m.metrics) and all(0 <= v <= 1 for v in metrics.values())
    assert metrics == m.evaluate(sess, num=512)  # the same points every call
    png = m.figure(sess, num=200, title='epoch 1')
    assert png.startswith(PNG_MAGIC)
    report, images = m.epoch_report(sess)  # what train.py logs at the end of an epoch
    assert report == m.evaluate(sess) and list(images) == ['toy_gan']
    assert images['toy_gan'].dtype == np.uint8 and images['toy_gan'].shape[0] > 100


def test_inference_graph_restores_the_trained_networks(tmp_path, graph):
    cfg = config.ToyGANConfig()
    m = registry.create(cfg)
    pipeline = toy_gan.ToyPipeline(cfg)
    saver = tf1.train.Saver()
    sess = session(graph)
    for _ in range(5):
        m.train_step(sess, sess.run(pipeline.next_batch))
    expected = toy_gan.toy_samples(sess, cfg, m.inputs, m.outputs, num=100, seed=3)
    saver.save(sess, str(tmp_path / 'model'))
    with tf.Graph().as_default():
        inputs, outputs = toy_gan.ToyGAN.build_inference(cfg)
        with tf1.Session() as restored:
            tf1.train.Saver().restore(restored, str(tmp_path / 'model'))
            samples = toy_gan.toy_samples(restored, cfg, inputs, outputs, num=100, seed=3)
            png = toy_gan.toy_figure(restored, cfg, inputs, outputs, num=100)
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)
    assert png.startswith(PNG_MAGIC)
