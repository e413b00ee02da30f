"""pipeline.py: image reading, preprocessing modes, the input pipeline, Lab."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import prepare, train_pipeline
from PIL import Image

from cyclegan_tf import config
from cyclegan_tf.data import layouts, pipeline
from cyclegan_tf.data.layouts import DatasetError
from cyclegan_tf.evaluation import visuals

tf1 = tf.compat.v1
LEVEL = 1.0 / 127.5 + 1e-5  # one 8-bit level in [-1, 1]
GRAY_ZEBRA = 'n02391049_2757.jpg'


def _batches(pipeline, n):
    """n batches of ``pipeline``, read in a session of the current default graph."""
    with tf1.Session() as sess:
        return [sess.run(pipeline.next_batch) for _ in range(n)]


def _names(paths):
    return [os.path.basename(p.decode()) for p in paths]


def _write(folder, name, array, **save_args):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    Image.fromarray(array).save(path, **save_args)
    return path


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _unaligned(tmp_path, n_a=2, n_b=2, height=30, width=40):
    """A tmp folder trainA/ trainB/ of random PNGs [height, width]."""
    for seed, (domain, n) in enumerate((('trainA', n_a), ('trainB', n_b))):
        for i in range(n):
            _write(tmp_path / domain, f'{i}.png', _noise(height, width, seed=100 * seed + i))
    return str(tmp_path)


# ---------------------------------------------------------------------------
# Real data.

def test_real_jpegs_make_batches_of_the_crop_size(graph, sample_data):
    cfg = config.CycleGANConfig(dataset=str(sample_data / 'horse2zebra_tiny'), load_size=32,
                                crop_size=24, batch_size=4)
    pipeline = train_pipeline(cfg)
    assert pipeline.steps_per_epoch == 2 and pipeline.epoch_size == 6
    assert pipeline.next_batch['A'].shape.as_list() == [None, 24, 24, 3]
    assert pipeline.next_batch['B'].shape.as_list() == [None, 24, 24, 3]
    first, last, _ = _batches(pipeline, 3)
    assert first['A'].shape == (4, 24, 24, 3) and last['A'].shape == (2, 24, 24, 3)
    assert sorted(_names(first['A_paths']) + _names(last['A_paths'])) == sorted(
        os.listdir(sample_data / 'horse2zebra_tiny' / 'trainA'))  # one epoch: each A once
    assert all(name.startswith('n02391049') for name in _names(first['B_paths']))
    assert -1.0 <= first['A'].min() < first['A'].max() <= 1.0


def test_decoding_matches_pil_and_grayscale_jpeg_becomes_rgb(graph, sample_data):
    folder = sample_data / 'horse2zebra_tiny'
    gray = pipeline.load_image(str(folder / 'trainB' / GRAY_ZEBRA))
    assert gray.shape == (48, 48, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    cfg = config.CycleGANConfig(dataset=str(folder), preprocess='none', no_flip=True,
                                serial_batches=True)
    for batch in _batches(train_pipeline(cfg), 6):
        for key in 'AB':
            path = batch[key + '_paths'][0].decode()
            image = batch[key][0]
            assert image.shape == (48, 48, 3)
            assert np.abs(image - pipeline.load_image(path)).max() <= LEVEL
            if path.endswith(GRAY_ZEBRA):
                assert np.array_equal(image[..., 0], image[..., 1])


@pytest.mark.parametrize('direction', ['AtoB', 'BtoA'])
def test_aligned_photo_left_label_right_and_direction(graph, sample_data, direction):
    cfg = config.Pix2PixConfig(dataset=str(sample_data / 'facades_tiny'), preprocess='none',
                               no_flip=True, serial_batches=True, direction=direction)
    batch = _batches(train_pipeline(cfg), 1)[0]
    pair = pipeline.load_image(batch['A_paths'][0].decode())
    photo, label = pair[:, :32], pair[:, 32:]
    if direction == 'BtoA':
        photo, label = label, photo
    assert np.abs(batch['A'][0] - photo).max() <= LEVEL
    assert np.abs(batch['B'][0] - label).max() <= LEVEL
    assert batch['A_paths'][0] == batch['B_paths'][0]


def test_unaligned_direction_swaps_the_folders(graph, sample_data):
    cfg = config.CycleGANConfig(dataset=str(sample_data / 'horse2zebra_tiny'), load_size=16,
                                crop_size=16, direction='BtoA', batch_size=6)
    batch = _batches(train_pipeline(cfg), 1)[0]
    assert all(name.startswith('n02391049') for name in _names(batch['A_paths']))  # zebras
    assert all(name.startswith('n02381460') for name in _names(batch['B_paths']))


@pytest.mark.parametrize('preprocess', ['resize_and_crop', 'crop', 'scale_width_and_crop'])
def test_aligned_halves_get_the_same_crop_and_flip(graph, tmp_path, preprocess):
    half = _noise(30, 40)
    _write(tmp_path / 'train', 'pair.png', np.concatenate([half, half], axis=1))
    cfg = config.Pix2PixConfig(dataset=str(tmp_path), preprocess=preprocess, load_size=36,
                               crop_size=24)
    batches = _batches(train_pipeline(cfg), 8)
    for batch in batches:
        assert batch['A'].shape == (1, 24, 24, 3)
        assert np.array_equal(batch['A'], batch['B'])
    assert len({batch['A'].tobytes() for batch in batches}) > 1  # the crops do vary


# ---------------------------------------------------------------------------
# Preprocessing modes, on 40 x 30 (width x height) images.

@pytest.mark.parametrize('preprocess, load, crop, size, static', [
    ('resize_and_crop', 32, 24, (24, 24), [24, 24]),
    ('crop', 32, 24, (24, 24), [24, 24]),
    ('scale_width', 32, 24, (24, 32), [None, 32]),     # h = int(max(32 * 30 / 40, 24))
    ('scale_width', 32, 28, (28, 32), [None, 32]),     # never lower than crop_size
    ('scale_width_and_crop', 32, 24, (24, 24), [24, 24]),
    ('none', 32, 24, (32, 40), [None, None]),          # 30 -> 32: multiples of 4
    ('crop', 32, 48, (48, 48), [48, 48]),              # crop larger than the image
    ('resize_and_crop', 32, 40, (40, 40), [40, 40]),   # crop larger than load_size
    ('scale_width_and_crop', 32, 40, (40, 40), [40, 40]),
])
def test_preprocess_output_shapes(graph, tmp_path, preprocess, load, crop, size, static):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path), preprocess=preprocess,
                                load_size=load, crop_size=crop)
    pipeline = train_pipeline(cfg)
    assert pipeline.next_batch['A'].shape.as_list() == [None] + static + [3]
    for batch in _batches(pipeline, 2):
        assert batch['A'].shape == (1,) + size + (3,)
        assert batch['B'].shape == (1,) + size + (3,)


def test_none_mode_rounds_half_to_even(graph, tmp_path):
    _unaligned(tmp_path, height=10, width=18)  # 2.5 -> 2, 4.5 -> 4 quarters
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='none')
    assert _batches(train_pipeline(cfg), 1)[0]['A'].shape == (1, 8, 16, 3)


def test_resize_is_pil_bicubic(graph, tmp_path):
    image = _noise(30, 40)
    path = _write(tmp_path / 'trainA', 'a.png', image)
    _write(tmp_path / 'trainB', 'b.png', image)
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='resize_and_crop',
                                load_size=24, crop_size=24, no_flip=True)
    batch = _batches(train_pipeline(cfg), 1)[0]
    expected = np.asarray(Image.open(path).resize((24, 24), Image.BICUBIC), np.float32)
    assert np.abs((batch['A'][0] + 1) * 127.5 - expected).mean() < 1.0


@pytest.mark.parametrize('no_flip', [True, False])
def test_flip_unless_no_flip(graph, tmp_path, no_flip):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :4] = 255  # a white band on the left
    _write(tmp_path / 'trainA', 'a.png', image)
    _write(tmp_path / 'trainB', 'b.png', image)
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='none', no_flip=no_flip)
    left_white = [batch['A'][0, 0, 0, 0] > 0 for batch in _batches(
        train_pipeline(cfg), 16)]
    if no_flip:
        assert all(left_white)
    else:
        assert any(left_white) and not all(left_white)


# ---------------------------------------------------------------------------
# Files and folders.

def test_corrupt_images_are_skipped_with_one_warning_each(graph, tmp_path, sample_data,
                                                          caplog):
    jpeg = (sample_data / 'horse2zebra_tiny' / 'trainA' / 'n02381460_1001.jpg').read_bytes()
    for i, name in enumerate(('a.png', 'c.png', 'd.png')):
        _write(tmp_path / 'trainA', name, _noise(8, 8, seed=i))
    (tmp_path / 'trainA' / 'b_truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (tmp_path / 'trainA' / 'e_garbage.tif').write_bytes(b'not a tiff at all')
    _write(tmp_path / 'trainB', 'b.png', _noise(8, 8))
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='none', batch_size=2)
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        pipeline = train_pipeline(cfg)
        assert pipeline.epoch_size == 5
        batches = _batches(pipeline, 8)  # 4 epochs of 3 readable images
    seen = [name for batch in batches for name in _names(batch['A_paths'])]
    assert sorted(set(seen)) == ['a.png', 'c.png', 'd.png']
    assert [len(batch['A']) for batch in batches] == [2, 1] * 4  # epochs stay apart
    messages = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
    assert len(messages) == 2
    assert any('b_truncated.jpg' in m for m in messages)
    assert any('e_garbage.tif' in m for m in messages)


def test_a_domain_without_readable_images_is_an_error(graph, tmp_path):
    _unaligned(tmp_path)
    for name in os.listdir(tmp_path / 'trainB'):
        (tmp_path / 'trainB' / name).write_bytes(b'broken')
    cfg = config.CycleGANConfig(dataset=str(tmp_path))
    with pytest.raises(DatasetError, match=f'no readable image in {tmp_path}/trainB'):
        train_pipeline(cfg)


def test_an_epoch_without_a_readable_image_stops_with_an_error(graph, tmp_path):
    _unaligned(tmp_path)
    pipeline = train_pipeline(config.CycleGANConfig(dataset=str(tmp_path)))
    for name in os.listdir(tmp_path / 'trainA'):  # broken after the build-time check
        (tmp_path / 'trainA' / name).write_bytes(b'broken')
    with tf1.Session() as sess:
        with pytest.raises(tf.errors.OpError, match='no image of a whole epoch'):
            sess.run(pipeline.next_batch)


def test_an_empty_domain_is_an_error_naming_it(graph, tmp_path):
    _unaligned(tmp_path)
    for name in os.listdir(tmp_path / 'trainA'):
        os.rename(tmp_path / 'trainA' / name, tmp_path / 'trainA' / (name + '.txt'))
    cfg = config.CycleGANConfig(dataset=str(tmp_path))
    with pytest.raises(DatasetError, match=f'no images in {tmp_path}/trainA'):
        train_pipeline(cfg)
    with pytest.raises(DatasetError, match=f'no images in {tmp_path}/trainA'):
        train_pipeline(cfg, root=str(tmp_path))  # the pipeline checks too


def test_any_mode_and_format_becomes_rgb(graph, tmp_path):
    """RGBA and palette PNG, 16-bit PNG, TIFF, palette BMP, grayscale JPEG, in
    one folder: TensorFlow and PIL decoders mixed."""
    rgb = _noise(12, 16)
    folder = tmp_path / 'trainA'
    _write(folder, 'a_rgba.png', np.dstack([rgb, np.full((12, 16), 7, np.uint8)]))
    palette = Image.fromarray(rgb).convert('P')
    palette.save(_write(folder, 'b_palette.png', rgb))
    palette.save(folder / 'c_palette.bmp')
    wide = (rgb[..., 0].astype(np.uint16) * 257)
    Image.fromarray(wide).save(folder / 'd_16bit.png')
    _write(folder, 'e.TIF', rgb)
    _write(folder, 'f_gray.jpg', rgb[..., 0], quality=95)
    _write(tmp_path / 'trainB', 'b.png', rgb)
    for path in layouts.list_images(folder):
        image = pipeline.load_image(path)
        assert image.shape == (12, 16, 3) and image.dtype == np.float32
    assert np.array_equal(pipeline.to_uint8(pipeline.load_image(folder / 'a_rgba.png')), rgb)
    assert np.array_equal(pipeline.to_uint8(pipeline.load_image(folder / 'd_16bit.png'))[..., 1],
                          rgb[..., 0])  # scaled, not clipped at 255
    cfg = config.CycleGANConfig(dataset=str(tmp_path), preprocess='none', no_flip=True,
                                serial_batches=True)
    reader = train_pipeline(cfg)
    assert reader.columns['A'].decoder is None  # mixed decoders
    for batch in _batches(reader, 6):
        path = batch['A_paths'][0].decode()
        assert batch['A'].shape == (1, 12, 16, 3)
        assert np.abs(batch['A'][0] - pipeline.load_image(path)).max() <= LEVEL, path


def test_grayscale_models(graph, sample_data):
    cfg = config.CycleGANConfig(dataset=str(sample_data / 'horse2zebra_tiny'), input_nc=1,
                                output_nc=1, preprocess='none', no_flip=True,
                                serial_batches=True)
    reader = train_pipeline(cfg)
    assert reader.next_batch['A'].shape.as_list() == [None, None, None, 1]
    batch = _batches(reader, 1)[0]
    assert batch['A'].shape == (1, 48, 48, 1) and batch['B'].shape == (1, 48, 48, 1)
    expected = pipeline.load_image(batch['A_paths'][0].decode(), channels=1)
    assert np.abs(batch['A'][0] - expected).max() <= LEVEL


def test_channels_must_fit_images(graph, sample_data):
    cfg = config.CycleGANConfig(dataset=str(sample_data / 'horse2zebra_tiny'), input_nc=2)
    with pytest.raises(DatasetError, match='input_nc must be 1 or 3'):
        train_pipeline(cfg)


# ---------------------------------------------------------------------------
# Epochs, order, seeds.

def test_steps_per_epoch(graph, tmp_path, sample_data):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path, n_a=6, n_b=4), batch_size=4)
    pipeline = train_pipeline(cfg)
    assert (pipeline.epoch_size, pipeline.steps_per_epoch) == (6, 2)
    pix2pix = config.Pix2PixConfig(dataset=str(sample_data / 'facades_tiny'), batch_size=3)
    assert train_pipeline(pix2pix).steps_per_epoch == 2
    assert train_pipeline(pix2pix, split='test').steps_per_epoch == 1
    small = config.CycleGANConfig(dataset=str(tmp_path), max_dataset_size=3, batch_size=2)
    assert train_pipeline(small).steps_per_epoch == 2


def test_serial_batches_and_epoch_boundaries(graph, tmp_path):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path, n_a=5, n_b=3), batch_size=2,
                                serial_batches=True, load_size=8, crop_size=8)
    batches = _batches(train_pipeline(cfg, epochs=2), 6)
    assert [len(b['A']) for b in batches] == [2, 2, 1, 2, 2, 1]
    a = [name for b in batches for name in _names(b['A_paths'])]
    b = [name for b in batches for name in _names(b['B_paths'])]
    assert a == ['0.png', '1.png', '2.png', '3.png', '4.png'] * 2
    assert b == ['0.png', '1.png', '2.png', '0.png', '1.png'] * 2  # index % |B|
    with tf1.Session() as sess:  # a fresh iterator: two epochs, then the end
        pipeline = train_pipeline(cfg, epochs=1)
        for _ in range(3):
            sess.run(pipeline.next_batch)
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(pipeline.next_batch)


def test_shuffled_epochs_see_every_a_once(graph, tmp_path):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path, n_a=7, n_b=2), batch_size=7,
                                load_size=8, crop_size=8)
    epochs = [_names(batch['A_paths']) for batch in _batches(train_pipeline(cfg), 3)]
    for names in epochs:
        assert sorted(names) == [f'{i}.png' for i in range(7)]
    assert len({tuple(names) for names in epochs}) > 1  # a fresh order each epoch


def _first_batches(cfg, n=3):
    with tf.Graph().as_default():
        return _batches(train_pipeline(cfg), n)


def test_same_seed_same_batches(tmp_path):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path, n_a=4, n_b=4), load_size=36,
                                crop_size=24, num_threads=3, seed=5)
    first, again = _first_batches(cfg), _first_batches(cfg.replace(num_threads=1))
    other = _first_batches(cfg.replace(seed=6))
    for key in ('A', 'B', 'A_paths', 'B_paths'):
        assert all(np.array_equal(x[key], y[key]) for x, y in zip(first, again))
    assert not all(np.array_equal(x['A'], y['A']) for x, y in zip(first, other))


# ---------------------------------------------------------------------------
# Colorization and Lab.

def test_lab_known_values():
    np.testing.assert_allclose(pipeline.rgb_to_lab([1.0, 1.0, 1.0]), [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(pipeline.rgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(pipeline.rgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20],
                               atol=0.01)
    np.testing.assert_allclose(pipeline.rgb_to_lab([0.0, 0.0, 1.0]), [32.30, 79.19, -107.86],
                               atol=0.01)
    colors = np.random.default_rng(0).uniform(size=(50, 3))
    np.testing.assert_allclose(pipeline.lab_to_rgb(pipeline.rgb_to_lab(colors)), colors, atol=1e-6)


def test_lab_in_tensorflow_matches_numpy(graph):
    colors = np.random.default_rng(1).uniform(size=(4, 5, 3)).astype(np.float32)
    lab = pipeline.tf_rgb_to_lab(colors)
    with tf1.Session() as sess:
        lab_value, rgb_value = sess.run([lab, pipeline.tf_lab_to_rgb(lab)])
    np.testing.assert_allclose(lab_value, pipeline.rgb_to_lab(colors), atol=2e-3)
    np.testing.assert_allclose(rgb_value, colors, atol=1e-4)


def _colorization_cfg(dataset, **kwargs):
    return config.ImageConfig(model='colorization', dataset=str(dataset), input_nc=1,
                              output_nc=2, preprocess='none', **kwargs)


def test_colorization_pipeline(graph, tmp_path, sample_data):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    _write(tmp_path / 'train', 'red.png', red)
    batch = _batches(train_pipeline(_colorization_cfg(tmp_path)), 1)[0]
    assert batch['A'].shape == (1, 8, 8, 1) and batch['B'].shape == (1, 8, 8, 2)
    np.testing.assert_allclose(batch['A'], 53.24 / 50 - 1, atol=1e-3)
    np.testing.assert_allclose(batch['B'][..., 0], 80.09 / 110, atol=1e-3)
    np.testing.assert_allclose(batch['B'][..., 1], 67.20 / 110, atol=1e-3)
    rgb = pipeline.colorization_to_rgb(batch['A'][0], batch['B'][0])
    assert np.abs(rgb - pipeline.load_image(tmp_path / 'train' / 'red.png')).max() < 0.01
    unaligned = train_pipeline(_colorization_cfg(sample_data / 'horse2zebra_tiny'))
    assert unaligned.epoch_size == 12  # both domains of an unaligned folder
    with pytest.raises(DatasetError, match='input_nc=1, output_nc=2'):
        train_pipeline(_colorization_cfg(tmp_path).replace(output_nc=3))


# ---------------------------------------------------------------------------
# Single images, measuring.

def test_save_image_round_trip(tmp_path):
    image = pipeline.load_image(_write(tmp_path, 'in.png', _noise(6, 9)))
    visuals.save_image(image, str(tmp_path / 'out' / 'copy.png'))
    assert np.array_equal(pipeline.load_image(tmp_path / 'out' / 'copy.png'), image)
    gray = image[..., :1]
    visuals.save_image(gray, str(tmp_path / 'gray.png'))
    assert Image.open(tmp_path / 'gray.png').mode == 'L'
    assert sorted(os.listdir(tmp_path)) == ['gray.png', 'in.png', 'out']  # no temp files
    assert np.array_equal(pipeline.to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])), [0, 128, 255, 255])


def test_pipeline_throughput(graph, tmp_path):
    cfg = config.CycleGANConfig(dataset=_unaligned(tmp_path, n_a=3, n_b=3), load_size=16,
                                crop_size=12, batch_size=2)
    speed = pipeline.pipeline_throughput(cfg, root=prepare(cfg), layout='unaligned',
                                         num_batches=4, warmup=1)
    assert speed['examples_per_second'] > 0
    assert speed['files_per_second'] == 2 * speed['examples_per_second']
    assert speed['cpu_ms_per_example'] > 0 and speed['batches'] == 4


def test_a_file_name_that_is_not_utf8_is_skipped_not_a_crash(tmp_path, graph):
    """tf.constant of its path raised UnicodeEncodeError (issue 14, item 10)."""
    from test_datasets import _bad_name, _tiny_unaligned

    root = _tiny_unaligned(tmp_path / 'mine')
    _bad_name(root / 'trainA')
    _bad_name(root / 'trainB')
    cfg = config.CycleGANConfig(dataset=str(root), load_size=8, crop_size=8)
    pipeline = train_pipeline(cfg)
    assert [len(c.paths) for c in pipeline.columns.values()] == [1, 1]
    with tf.compat.v1.Session() as sess:
        assert sess.run(pipeline.next_batch)['A'].shape == (1, 8, 8, 3)
