"""The model registry: one place per model, read by every script; --help by
topic and model; the toy GAN trained and sampled from the command line."""

import io
import os
from contextlib import redirect_stdout

import numpy as np
import pytest
from absl import flags

from cyclegan_tf import config, model, registry, sample, train
from cyclegan_tf.models import toy_gan
from cyclegan_tf.running import runs

TOY = ['--model=toy_gan', '--steps_per_epoch=10', '--n_epochs=1', '--n_epochs_decay=1',
       '--hidden_units=8', '--batch_size=32', '--print_freq=5', '--name=toy']


def _stdout(fn):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        status = fn()
    return status, buffer.getvalue()


def test_every_model_is_described_once_and_completely():
    for name, spec in registry.MODELS.items():
        assert spec.name == name and spec.config().model == name
        assert issubclass(spec.model_class, model.Model)
        options = spec.config.options()
        assert set(spec.architecture) <= set(options)
        grouped = {n for names in config.GROUPS.values() for n in names}
        assert set(options) <= grouped, f'{name}: options without a --help group'
        if spec.images:
            assert spec.model_class.TRANSLATIONS and 'A' in spec.model_class.TRANSLATIONS


def test_an_unknown_model_is_one_line_naming_the_choices():
    with pytest.raises(config.ConfigError, match='unknown model .*cycle_gan, pix2pix'):
        registry.get('cyclegan')
    with pytest.raises(config.ConfigError, match='--model=nope: value should be one of'):
        registry.from_flags(flags.FlagValues(), ['train.py', '--model=nope'])


class TinyToyConfig(config.ToyGANConfig):
    """A model added as a user would: a config class ..."""

    model = 'tiny_toy'
    hidden_layers = 1


class TinyToy(toy_gan.ToyGAN):
    """... a Model class ..."""


def test_adding_a_model_is_one_class_and_one_line(monkeypatch, tmp_path):
    # ... and one line in the registry: every script then knows it.
    monkeypatch.setitem(registry.MODELS, 'tiny_toy', registry.Spec(
        'tiny_toy', TinyToyConfig, f'{__name__}.TinyToy', registry.TOY, 'a test model'))
    status, out = _stdout(lambda: train.main(
        ['train.py', f'--runs_dir={tmp_path}'] + [a.replace('toy_gan', 'tiny_toy') for a in TOY]))
    assert status == 0, out
    assert runs.load_config(str(tmp_path / 'toy')).model == 'tiny_toy'
    status, out = _stdout(lambda: train.main(['train.py', '--model=tiny_toy', '--help']))
    assert status == 0 and 'a test model' in out and '--hidden_units' in out


def test_the_toy_gan_trains_reports_resumes_and_samples(tmp_path):
    args = ['train.py', f'--runs_dir={tmp_path}'] + TOY
    status, out = _stdout(lambda: train.main(args))
    assert status == 0, out
    assert 'New run' in out and 'epoch 1/2: D_accuracy' in out and 'epoch 2/2' in out
    run_dir = tmp_path / 'toy'
    assert sorted(os.listdir(run_dir / 'samples')) == ['toy_gan_epoch_0001.png',
                                                       'toy_gan_epoch_0002.png']
    assert runs.step_of(train_checkpoint(run_dir)) == 20
    # Training longer resumes at the saved step.
    status, out = _stdout(lambda: train.main(args + ['--n_epochs=2']))
    assert status == 0 and 'Resuming' in out and 'step 20' in out, out
    assert runs.step_of(train_checkpoint(run_dir)) == 30

    status, out = _stdout(lambda: sample.main(['sample.py', f'--run={run_dir}',
                                               '--num_test=500']))
    assert status == 0, out
    points = np.load(run_dir / 'test_30' / 'samples.npy')
    assert points.shape == (500, 2) and np.all(np.isfinite(points))
    assert (run_dir / 'test_30' / 'figure.png').stat().st_size > 1000
    assert 'target [1.0, 1.0]' in out


def train_checkpoint(run_dir):
    with open(run_dir / 'checkpoints' / 'checkpoint') as f:
        return f.readline().split('"')[1]


def test_help_shows_the_chosen_models_options_by_topic():
    status, pix2pix = _stdout(lambda: train.main(['train.py', '--model', 'pix2pix', '--help']))
    assert status == 0
    for heading in ('run:', 'data:', 'network:', 'objective:', 'optimization:', 'logging:'):
        assert f'\n{heading}\n' in pix2pix
    assert '--lambda_L1' in pix2pix and '--lambda_identity' not in pix2pix
    assert '--toy_modes' not in pix2pix and "--netG: default 'unet_256'" in pix2pix
    assert '(one of resnet_9blocks, resnet_6blocks, unet_256, unet_128)' in pix2pix
    assert '--[no]dropout: default true' in pix2pix  # pix2pix trains with dropout
    _, cycle_gan = _stdout(lambda: train.main(['train.py', '--helpshort']))
    assert '--lambda_identity' in cycle_gan and '--[no]dropout: default false' in cycle_gan
    _, full = _stdout(lambda: train.main(['train.py', '--helpfull']))
    assert '--lambda_L1' in full and '--lambda_identity' in full and '--toy_modes' in full
    assert max(len(line) for line in pix2pix.splitlines()) <= 120


@pytest.mark.parametrize('argv, dropout', [
    ([], False), (['--dropout'], True), (['--nodropout'], False), (['--no_dropout'], False),
    (['--nono_dropout'], True), (['--model=pix2pix'], True),
    (['--model=pix2pix', '--no_dropout'], False), (['--model=pix2pix', '--nodropout'], False)])
def test_booleans_read_naturally_and_the_official_spelling_stays(argv, dropout):
    cfg = registry.from_flags(flags.FlagValues(), ['train.py'] + argv)
    assert cfg.no_dropout is not dropout


def test_contradicting_spellings_are_an_error():
    with pytest.raises(config.ConfigError, match='contradict'):
        registry.from_flags(flags.FlagValues(), ['train.py', '--flip', '--no_flip'])


def test_cosine_anneals_over_every_epoch():
    cfg = config.CycleGANConfig(lr_policy='cosine', n_epochs=3, n_epochs_decay=5)
    factors = [model.lr_factor(epoch, cfg) for epoch in range(8)]
    assert factors[0] == 1.0 and all(a > b > 0 for a, b in zip(factors, factors[1:]))
    assert factors[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert model.lr_factor(8, cfg) == pytest.approx(0.0)
