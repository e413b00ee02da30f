"""tests/data: the tiny committed images keep what the other tests rely on,
and its RGBA PNG and non-square JPEG read as RGB through data.py."""

import shutil

import numpy as np
import tensorflow as tf
from conftest import train_pipeline
from PIL import Image

from cyclegan_tf import config
from cyclegan_tf.data import pipeline

GRAY_ZEBRA = 'n02391049_2757.jpg'


def _images(folder):
    """{name: (format, size, mode)} of the files in ``folder``."""
    found = {}
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            found[path.name] = (image.format, image.size, image.mode)
    return found


def test_the_tiny_sets_keep_their_layout_names_sizes_and_modes(sample_data):
    h2z = sample_data / 'horse2zebra_tiny'
    for sub, count, prefix in (('trainA', 6, 'n02381460_'), ('trainB', 6, 'n02391049_'),
                               ('testA', 3, 'n02381460_'), ('testB', 3, 'n02391049_')):
        images = _images(h2z / sub)
        assert len(images) == count and all(name.startswith(prefix) for name in images), sub
        for name, found in images.items():
            mode = 'L' if name == GRAY_ZEBRA else 'RGB'
            assert found == ('JPEG', (48, 48), mode), name
    assert _images(h2z / 'trainB')[GRAY_ZEBRA][2] == 'L'  # the one grayscale JPEG
    for sub, count in (('train', 4), ('test', 2)):
        images = _images(sample_data / 'facades_tiny' / sub)
        assert sorted(images) == [f'{i}.jpg' for i in range(1, count + 1)]
        assert set(images.values()) == {('JPEG', (64, 32), 'RGB')}  # A|B, 32 px each
    assert _images(sample_data / 'misc') == {'horse_rgba.png': ('PNG', (32, 32), 'RGBA'),
                                             'zebra_wide.jpg': ('JPEG', (48, 32), 'RGB')}
    size = sum(path.stat().st_size for path in sample_data.rglob('*') if path.is_file())
    assert size < 64 * 1024  # a few dozen KB: keep it so


def test_rgba_png_and_non_square_jpeg_read_as_rgb(graph, tmp_path, sample_data):
    misc = sample_data / 'misc'
    rgba = np.asarray(Image.open(misc / 'horse_rgba.png'))
    assert rgba[0, :, 3].max() == 4 and rgba[-1, :, 3].min() == 251  # a real alpha ramp
    horse = pipeline.load_image(misc / 'horse_rgba.png')
    assert np.array_equal(pipeline.to_uint8(horse), rgba[..., :3])  # alpha dropped, not blended
    assert pipeline.load_image(misc / 'zebra_wide.jpg').shape == (32, 48, 3)
    for domain, names in (('trainA', ['horse_rgba.png', 'zebra_wide.jpg']),
                          ('trainB', ['zebra_wide.jpg'])):
        (tmp_path / domain).mkdir()
        for name in names:
            shutil.copy(misc / name, tmp_path / domain / name)
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='scale_width', load_size=24,
                                crop_size=16, no_flip=True, serial_batches=True)
    reader = train_pipeline(cfg)
    with tf.compat.v1.Session() as sess:
        batches = [sess.run(reader.next_batch) for _ in range(2)]
    # Width to 24, height int(max(24 * h / w, 16)): 32x32 -> 24x24, 48x32 -> 24x16.
    for batch, name, size in zip(batches, ['horse_rgba.png', 'zebra_wide.jpg'], [24, 16]):
        assert batch['A_paths'][0].decode().endswith(name)
        assert batch['A'].shape == (1, size, 24, 3)
        rgb = Image.open(misc / name).convert('RGB').resize((24, size), Image.BICUBIC)
        assert np.abs((batch['A'][0] + 1) * 127.5 - np.asarray(rgb, np.float32)).mean() < 1.0
