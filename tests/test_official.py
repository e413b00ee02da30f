"""Users of the official implementation feel at home: its option names with
their meaning, its checkpoint habits (--save_epoch_freq, --epoch,
--load_iter), --restart, and the documented Python API."""

import os
import shutil

import numpy as np
import pytest
from absl import flags
from PIL import Image
from test_train import make_data_root, tiny_args

from cyclegan_tf import config, inference, registry, sample, train
from cyclegan_tf.running import runs


def _config(*argv):
    return registry.from_flags(flags.FlagValues(), ['train.py', *argv])


def _train(capsys, *argv):
    status = train.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp('datasets'))


@pytest.fixture(scope='module')
def run(tmp_path_factory, data_root):
    """A tiny run of 2 epochs of 2 steps, a snapshot after each epoch."""
    runs_dir = tmp_path_factory.mktemp('runs')
    assert train.main(tiny_args(runs_dir, data_root, '--n_epochs=1', '--n_epochs_decay=1',
                                '--save_epoch_freq=1', '--save_freq=0')) == 0
    return os.path.join(runs_dir, 'tiny')


def test_official_names_set_the_same_options(tmp_path):
    cfg = _config(f'--dataroot={tmp_path}', '--checkpoints_dir=/x/runs', '--save_latest_freq=7')
    assert (cfg.dataset, cfg.runs_dir, cfg.save_freq) == (str(tmp_path), '/x/runs', 7)
    with pytest.raises(config.ConfigError, match='--dataroot and --dataset contradict'):
        _config('--dataroot=a', '--dataset=b')
    assert _config('--suffix={model}_{netG}_size{load_size}', '--name=h2z').run_name == \
        'h2z_cycle_gan_resnet_9blocks_size286'
    with pytest.raises(config.ConfigError, match='--suffix .* names no setting'):
        _ = _config('--suffix={nope}').run_name
    assert _config('--phase=val').phase == 'val'
    assert _config('--model=pix2pix', '--dataset_mode=aligned').model == 'pix2pix'
    with pytest.raises(config.ConfigError, match='--dataset_mode aligned: the cycle_gan model '
                                                 'reads unaligned data'):
        _config('--dataset_mode=aligned')


def test_official_options_without_meaning_here_say_what_to_use(tmp_path, data_root, capsys):
    args = tiny_args(tmp_path, data_root, '--max_steps=1', '--continue_train', '--display_id=1',
                     '--use_wandb', '--gpu_ids=-1', '--verbose')
    status, out, _ = _train(capsys, *args)
    assert status == 0
    assert 'train.py: note: --continue_train: resuming is automatic' in out
    assert 'train.py: note: --display_id: there is no visdom display' in out
    assert 'in TensorBoard: tensorboard --logdir' in out
    assert 'note: --use_wandb: there is no Weights & Biases logging' in out
    assert '[G_A] ResnetGenerator:' in out and 'G_A/input/conv/weights' in out  # --verbose
    assert out.index('loading TensorFlow') < out.index('New run')  # a line before the wait
    progress = [line for line in out.splitlines() if line.startswith(('step ', '    '))]
    assert progress and max(len(line) for line in progress) <= 120


def test_bad_gpu_ids_and_dataset_mode_are_one_line(tmp_path, data_root, capsys):
    for flag, message in (('--gpu_ids=x', '--gpu_ids is a list of GPU numbers'),
                          ('--dataset_mode=single', 'sample.py reads single images')):
        status, _, err = _train(capsys, *tiny_args(tmp_path, data_root, flag))
        assert status == 2 and message in err and len(err.splitlines()) == 1


def test_epoch_snapshots_are_kept_and_sampled_by_epoch_or_iteration(run, capsys):
    folder = runs.checkpoint_dir(run)
    assert os.path.isfile(os.path.join(folder, 'epoch_0001', 'model.ckpt-2.index'))
    assert os.path.isfile(os.path.join(folder, 'epoch_0002', 'model.ckpt-4.index'))
    for args, step in ((['--epoch=1'], 2), (['--epoch=latest'], 4), (['--load_iter=2'], 2)):
        assert sample.main(['sample.py', f'--run={run}', '--num_test=1', *args]) == 0
        assert f'model.ckpt-{step}' in capsys.readouterr().out
    assert sample.main(['sample.py', f'--run={run}', '--epoch=7']) == 2
    assert 'no snapshot of epoch 7' in capsys.readouterr().err


def test_save_freq_0_and_no_epoch_snapshots_save_only_at_the_end(tmp_path, data_root, capsys):
    args = tiny_args(tmp_path, data_root, '--n_epochs=2', '--n_epochs_decay=0', '--save_freq=0',
                     '--save_epoch_freq=0')
    status, out, _ = _train(capsys, *args)
    assert status == 0 and out.count('saved ') == 1 and '(end of training)' in out
    assert sorted(os.listdir(runs.checkpoint_dir(str(tmp_path / 'tiny')))) == [
        'checkpoint', 'model.ckpt-4.data-00000-of-00001', 'model.ckpt-4.host.npz',
        'model.ckpt-4.index']


def test_epoch_count_starts_the_schedule_later(tmp_path, data_root, capsys):
    args = tiny_args(tmp_path, data_root, '--n_epochs=1', '--n_epochs_decay=3',
                     '--epoch_count=3', '--print_freq=1')
    status, out, _ = _train(capsys, *args)
    assert status == 0
    # Epochs 3 and 4 of 4 are left: 2 epochs of 2 steps, at the official rates.
    assert 'training to step 4' in out and 'epoch 3/4' in out and 'epoch 4/4' in out
    assert 'lr 1.00e-04' in out and 'lr 5.00e-05' in out


def test_restart_moves_the_old_run_aside(run, tmp_path, data_root, capsys):
    runs_dir = tmp_path / 'runs'
    os.makedirs(runs_dir)
    copy = runs_dir / 'tiny'
    shutil.copytree(run, copy)
    status, out, _ = _train(capsys, *tiny_args(runs_dir, data_root, '--max_steps=1', '--restart'))
    assert status == 0 and 'New run' in out
    aside = [name for name in os.listdir(runs_dir) if name.startswith('tiny.restarted-')]
    assert len(aside) == 1 and f'moved {copy} aside' in out
    assert os.path.isfile(runs_dir / aside[0] / 'checkpoints' / 'model.ckpt-4.index')


def test_sample_resizes_stretches_and_finds_runs_by_name(run, tmp_path, capsys):
    out = tmp_path / 'out'
    assert sample.main(['sample.py', f'--name={os.path.basename(run)}',
                        f'--checkpoints_dir={os.path.dirname(run)}', f'--results_dir={out}',
                        '--num_test=1', '--load_size=16', '--aspect_ratio=2',
                        '--display_winsize=64']) == 0
    image = np.asarray(Image.open(out / 'images' / '0000_fake_B.png'))
    assert image.shape == (16, 32, 3)
    assert 'width="64"' in (out / 'index.html').read_text()


def test_the_python_api_translates_as_sample_py_writes(run, tmp_path):
    photo = Image.fromarray(np.random.RandomState(0).randint(0, 256, (20, 28, 3), np.uint8))
    photo.save(tmp_path / 'photo.png')
    assert sample.main(['sample.py', f'--run={run}', f'--input={tmp_path / "photo.png"}',
                        f'--results_dir={tmp_path / "out"}']) == 0
    with inference.Translator.from_run(run) as translator:
        translated = translator.translate(photo)
        grey = translator.translate(np.asarray(photo.convert('L')))
    written = np.asarray(Image.open(tmp_path / 'out' / 'images' / 'photo_fake_B.png'))
    assert translated.shape == (20, 28, 3) and translated.dtype == np.uint8
    assert np.abs(translated.astype(int) - written).max() <= 1
    assert grey.shape == (20, 28, 3)
    with pytest.raises(runs.RunError, match='translates from A and B only'):
        inference.Translator.from_run(run).fetches('C')
