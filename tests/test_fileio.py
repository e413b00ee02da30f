"""fileio.atomic_write and the files written with it: permissions as any
other file of a run, and a failed write that leaves the old file whole."""

import contextlib
import os
import stat

import numpy as np
import pytest

from cyclegan_tf import config
from cyclegan_tf.evaluation import visuals
from cyclegan_tf.running import fileio, runs


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


class Unsaveable:
    def __array__(self, *args, **kwargs):
        raise TypeError('cannot be an array')


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_replaces_the_file_with_the_umask_of_ordinary_files(tmp_path):
    path = tmp_path / 'sub' / 'f.txt'
    with umask(0o022):
        with fileio.atomic_write(str(path), 'w') as f:
            f.write('héllo')
        assert path.read_text(encoding='utf-8') == 'héllo' and mode(path) == 0o644
        open(tmp_path / 'plain', 'w').close()  # what open() makes, as TensorFlow's files
        assert mode(tmp_path / 'plain') == 0o644
    with umask(0o077):
        with fileio.atomic_write(str(path)) as f:
            f.write(b'private')
        assert path.read_bytes() == b'private' and mode(path) == 0o600
    assert os.listdir(path.parent) == ['f.txt']


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'f.bin'
    path.write_bytes(b'old')
    for error in (ValueError('boom'), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with fileio.atomic_write(str(path)) as f:
                f.write(b'half of the new')
                raise error
        assert path.read_bytes() == b'old'
        assert os.listdir(tmp_path) == ['f.bin']


def test_run_files_are_0644_and_a_failed_save_keeps_them(tmp_path):
    """config.json, host states, sample PNGs and sample.py's images: readable
    by the other users who can read the checkpoints beside them."""

    run = tmp_path / 'run'
    with umask(0o022):
        runs.save_config(config.CycleGANConfig(name='x'), str(run / 'config.json'))
        os.makedirs(run / 'checkpoints')
        runs.save_host_state(str(run / 'checkpoints' / 'model.ckpt-1'), {'a': np.zeros(3)})
        visuals.save_png(np.zeros((4, 4, 3), np.uint8), str(run / 'samples' / 's.png'))
        visuals.save_image(np.zeros((4, 4, 3)), str(run / 'test' / 'i.jpg'))
        visuals.write_html(str(run / 'test' / 'index.html'), 't', [])
    files = ['config.json', 'checkpoints/model.ckpt-1.host.npz', 'samples/s.png',
             'test/i.jpg', 'test/index.html']
    assert {name: mode(run / name) for name in files} == {name: 0o644 for name in files}
    assert runs.load_host_state(str(run / 'checkpoints' / 'model.ckpt-1'))['a'].shape == (3,)

    before = {name: (run / name).read_bytes() for name in files}
    with pytest.raises(TypeError):  # PIL, while writing
        visuals.save_png(np.zeros((4, 4, 5), np.uint8), str(run / 'samples' / 's.png'))
    with pytest.raises(ValueError):
        visuals.save_image(np.zeros((4, 4, 3)), str(run / 'test' / 'i.unknown'))
    with pytest.raises(TypeError):
        runs.save_host_state(str(run / 'checkpoints' / 'model.ckpt-1'), {'a': Unsaveable()})
    with pytest.raises(TypeError):
        runs.save_config(type('Odd', (), {'to_dict': lambda self: {'x': object()}})(),
                         str(run / 'config.json'))
    assert {name: (run / name).read_bytes() for name in files} == before
    left = sorted(os.path.relpath(os.path.join(r, f), run)
                  for r, _, names in os.walk(run) for f in names)
    assert left == sorted(files)


def test_the_best_checkpoint_is_readable_like_the_others(tmp_path):
    """checkpoints/best/ was a private mkdtemp folder and best.json 0644 by
    chance of a chmod: both now as ordinary files and folders."""
    run = tmp_path / 'run'
    folder = run / 'checkpoints'
    os.makedirs(folder)
    with umask(0o022):
        for suffix in ('.index', '.data-00000-of-00001', '.host.npz'):
            (folder / f'model.ckpt-7{suffix}').write_bytes(b'x')
        runs.keep_best(str(folder / 'model.ckpt-7'), str(run), {'fid': 1.0})
    assert mode(folder / 'best') == 0o755 and mode(folder / 'best.json') == 0o644
    assert sorted(os.listdir(folder / 'best')) == [
        'model.ckpt-7.data-00000-of-00001', 'model.ckpt-7.host.npz', 'model.ckpt-7.index']
    assert runs.best_record(str(run))['step'] == 7
    assert not [name for name in os.listdir(folder) if name.startswith('.')]


def test_the_feature_cache_is_written_atomically(tmp_path, monkeypatch):
    from cyclegan_tf.evaluation import metrics

    path = tmp_path / 'cache' / 'f.npz'
    with umask(0o022):
        metrics._write_cache(str(path), np.zeros((2, 3), np.float32), ['a', 'b'])
    assert mode(path) == 0o644 and os.listdir(path.parent) == ['f.npz']
    with pytest.raises(TypeError):
        metrics._write_cache(str(path), Unsaveable(), ['a'])
    assert os.listdir(path.parent) == ['f.npz']
