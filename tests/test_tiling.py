"""Tiled translation (evaluation/tiling.py, inference.Translator): the tiles'
margins cover the receptive field (CycleGAN's ResNet and CUT's anti-aliased
one), tiles normalized with the statistics of the whole image give the whole
image's translation, U-Net tiles blend, and sample.py takes --tile_size and
--norm_stats_size and tiles a CUT run's images."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf import config, inference, modules, ops, registry, sample
from cyclegan_tf.data import pipeline
from cyclegan_tf.evaluation import tiling
from cyclegan_tf.running import runs

tf1 = tf.compat.v1
LEVEL = 1.0 / 127.5  # one 8-bit level in [-1, 1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _photo(height, width, seed=0):
    """A smooth random image in [-1, 1], [H, W, 3] float32 (noise, summed)."""
    noise = np.random.RandomState(seed).uniform(-1, 1, [height, width, 3])
    image = np.cumsum(np.cumsum(noise, 0), 1)
    image -= image.mean((0, 1))
    return (image / np.abs(image).max()).astype(np.float32)


def _with_tiles(network_of, training=False):
    """(untiled output tensor, its input, TiledGenerator) of one network."""
    network = network_of()
    x = tf1.placeholder(tf.float32, [1, None, None, 3])
    y = network(x, training=training)
    count = len(tf1.global_variables())
    with tf1.variable_scope(tf1.get_variable_scope(), reuse=True), tf1.name_scope('tiled/'):
        tiled = tiling.TiledGenerator(network_of(), training=training)
    assert len(tf1.global_variables()) == count  # the same variables, reused
    return y, x, tiled


def test_spans_cover_the_image_with_aligned_windows():
    for size, tile, margin, multiple in ((96, 32, 24, 4), (100, 36, 88, 4), (512, 256, 64, 256)):
        found = tiling.spans(size, tile, margin, multiple)
        assert [core for _, core in found] == [(s, min(size, s + tile))
                                               for s in range(0, size, tile)]
        for (low, high), (start, stop) in found:
            assert low % multiple == 0 and high % multiple == 0 or high == size
            assert low <= max(0, start - margin) and high >= min(size, stop + margin)
    assert tiling.spans(96, 32, 24, 4)[1] == ((8, 88), (32, 64))


def test_ramps_weigh_the_core_fully_and_fall_to_zero_at_the_window_edges():
    weight = tiling.ramp((8, 88), (32, 64))
    assert np.all(weight[32 - 8:64 - 8] == 1) and weight[0] == 0 and weight[-1] == 0
    assert np.all(np.diff(weight[:24]) > 0) and np.all(np.diff(weight[56:]) < 0)
    assert np.all(tiling.ramp((0, 40), (0, 32))[:32] == 1)  # no fall at the image's edge
    total = np.zeros(96)
    for window, core in tiling.spans(96, 32, 24, 4):
        total[window[0]:window[1]] += tiling.ramp(window, core)
    assert np.all(total >= 1)  # every pixel has a weight: the blend divides by it


def test_stats_shape_is_the_image_or_a_thumbnail_in_multiples():
    assert tiling.stats_shape(600, 800, 0, 4, 8) == (600, 800)
    assert tiling.stats_shape(600, 800, 800, 4, 8) == (600, 800)
    assert tiling.stats_shape(6000, 8000, 512, 4, 8) == (384, 512)
    assert tiling.stats_shape(12, 100000, 512, 4, 8) == (8, 512)
    assert tiling.stats_shape(3000, 3000, 512, 256, 256) == (512, 512)


def _reach(graph, G, size=96):
    """How far (pixels) the output pixels at (c + d, c + d), c the centre, d 0 ... 3,
    see into the input of ``G`` (norm 'none'), measured by their gradients: each
    row and column offset modulo the stride 4 once (how far a pixel sees along
    one axis depends on its position along that axis only). Weights of a fixed
    seed: where every ReLU on the way is off, a gradient is 0."""
    graph.seed = 0
    x = tf1.placeholder(tf.float32, [1, size, size, 3])
    y = G(x, training=False)
    centre = size // 2
    grads = [tf.gradients(y[0, centre + d, centre + d], x)[0][0] for d in range(4)]
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        noise = np.random.RandomState(0).uniform(-1, 1, [1, size, size, 3])
        values = sess.run(grads, {x: noise})  # noise: few ReLUs off, few gradients zero
    reach = 0
    for d, grad in enumerate(values):
        rows = np.nonzero(np.abs(grad).sum((1, 2)))[0]
        cols = np.nonzero(np.abs(grad).sum((0, 2)))[0]
        at = centre + d
        reach = max(reach, at - rows[0], rows[-1] - at, at - cols[0], cols[-1] - at)
    return reach


@pytest.mark.parametrize('blocks', [1, 2])
def test_receptive_radius_bounds_what_an_output_pixel_sees(graph, blocks):
    G = modules.ResnetGenerator('G', ngf=4, n_blocks=blocks, norm='none')
    assert _reach(graph, G) == G.receptive_radius  # no farther, and as far


@pytest.mark.parametrize('blocks,no_antialias,no_antialias_up', [
    (1, False, False), (2, False, False), (1, True, False), (1, False, True)])
def test_cut_receptive_radius_counts_the_blur_layers(graph, blocks, no_antialias,
                                                     no_antialias_up):
    """29 px for CUT's anti-aliased generator with 1 block (8 more a block), 26
    with stride-2 convs down, 23 with transposed convs up (both: CycleGAN's
    20, as ResnetGenerator's above). ngf 8: at 4, 2 of 48 random inits had an
    output pixel whose ReLUs were all off (a zero gradient)."""
    G = modules.CUTResnetGenerator('G', ngf=8, n_blocks=blocks, norm='none',
                                   no_antialias=no_antialias, no_antialias_up=no_antialias_up)
    assert _reach(graph, G) == G.receptive_radius


def _translations(graph, y, x, tiled, image, *how):
    """The untiled translation of ``image``, then for each of ``how``: (tile,
    stats_size), its tiled translation; ((r0, r1), (c0, c1)), the tile pass's
    output for that window alone, normalized with the whole image's statistics."""
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        results = [sess.run(y, {x: image[None]})[0]]
        for a, b in how:
            if isinstance(a, int):
                results.append(tiled.translate(sess, image, tile=a, stats_size=b))
            else:
                feed = tiled.feed(tiled.record(sess, image, 0))
                feed[tiled.window] = image[None, a[0]:a[1], b[0]:b[1]]
                results.append(sess.run(tiled.output, feed)[0])
    return results


@pytest.mark.parametrize('norm,training', [('instance', False), ('batch', True)])
def test_tiles_with_the_whole_images_statistics_give_its_translation(graph, norm, training):
    """64x96 in 32 px tiles (windows of up to 72 px: 6 tiles, no window the whole
    image): within one 8-bit level of the untiled translation."""
    y, x, tiled = _with_tiles(lambda: modules.ResnetGenerator('G', ngf=4, n_blocks=1, norm=norm),
                              training)
    assert tiled.margin == 20 and len(tiled.moments) == 1 + 2 + 2 + 2
    whole, tiles, thumbnail = _translations(graph, y, x, tiled, _photo(64, 96), (32, 0), (32, 48))
    assert tiles.shape == whole.shape == (64, 96, 3)
    assert np.abs(tiles - whole).max() < LEVEL
    assert np.abs(pipeline.to_uint8(tiles).astype(int) - pipeline.to_uint8(whole)).max() <= 1
    assert np.abs(thumbnail - whole).max() > LEVEL  # other statistics: another output


def test_cut_tiles_with_the_whole_images_statistics_give_its_translation(graph):
    """CUT's anti-aliased generator (margin 32), 96x128 in 32 px tiles (windows
    of up to 96 px, none the whole image): within one 8-bit level of the untiled
    translation. A window must start at a multiple of 4 pixels: 2 pixels off,
    the blurred downsampling samples another grid and the tile comes out
    otherwise. Xavier gain 1, not CUT's 0.02: outputs over all of [-1, 1]
    (std about 0.5; at 0.02 about 0.01, where a level says little)."""
    y, x, tiled = _with_tiles(lambda: modules.CUTResnetGenerator('G', ngf=4, n_blocks=1,
                                                                 init_gain=1.0))
    assert tiled.margin == 32 and len(tiled.moments) == 1 + 2 + 2 + 2
    image = _photo(96, 128)
    whole, tiles, thumbnail, aligned, shifted = _translations(
        graph, y, x, tiled, image, (32, 0), (32, 48), ((0, 96), (4, 100)), ((0, 96), (2, 98)))
    assert tiles.shape == whole.shape == (96, 128, 3)
    assert np.abs(tiles - whole).max() < LEVEL
    assert np.abs(pipeline.to_uint8(tiles).astype(int) - pipeline.to_uint8(whole)).max() <= 1
    assert np.abs(thumbnail - whole).max() > LEVEL  # other statistics: another output
    assert np.abs(aligned[:, 32:64] - whole[:, 36:68]).max() < LEVEL
    assert np.abs(shifted[:, 32:64] - whole[:, 34:66]).max() > LEVEL


def test_on_tile_reports_progress_and_can_stop(graph):
    y, x, tiled = _with_tiles(lambda: modules.ResnetGenerator('G', ngf=2, n_blocks=1))
    calls = []
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        tiled.translate(sess, _photo(64, 96), tile=32, stats_size=0,
                        on_tile=lambda done, total: calls.append((done, total)))
        part = tiled.translate(sess, _photo(64, 96), tile=32, stats_size=0,
                               on_tile=lambda done, total: done == 2)
    assert calls == [(i, 6) for i in range(1, 7)]
    assert np.any(part[:32, :64]) and not np.any(part[32:]) and not np.any(part[:, 64:])


def test_a_unet_is_blended_from_overlapping_windows(graph):
    y, x, tiled = _with_tiles(lambda: modules.UnetGenerator('G', ngf=4, num_downs=5,
                                                            norm='batch'))
    assert tiled.network.receptive_radius is None and tiled.margin == 32 and not tiled.moments
    image = _photo(96, 128)
    whole, one, tiles, *windows = _translations(
        graph, y, x, tiled, image, (128, 0), (32, 0),
        *[(rows, cols) for rows, _ in tiling.spans(96, 32, 32, 32)
          for cols, _ in tiling.spans(128, 32, 32, 32)])
    assert np.abs(one - whole).max() < 1e-5  # one window: the whole image
    assert tiles.shape == (96, 128, 3) and np.all(np.isfinite(tiles))
    assert np.abs(tiles - whole).mean() < np.abs(whole).mean()  # near it, not equal
    # A blend of the windows' outputs: within their range at every pixel.
    assert tiles.min() >= min(w.min() for w in windows) - 1e-5
    assert tiles.max() <= max(w.max() for w in windows) + 1e-5


def test_moments_record_one_call_only(graph):
    moments = ops.Moments()
    G = modules.ResnetGenerator('G', ngf=2, n_blocks=1)
    G(tf1.placeholder(tf.float32, [1, 16, 16, 3]), moments=moments)
    assert sorted(moments.layers)[0] == 'G/down_1/norm' and len(moments.layers) == 7
    with pytest.raises(ValueError, match='one network call'):
        G(tf1.placeholder(tf.float32, [1, 16, 16, 3]), moments=moments)


def _checkpoint(cfg, folder):
    """A checkpoint of randomly initialized inference networks of ``cfg``."""
    with tf.Graph().as_default():
        registry.of(cfg).model_class.build_inference(cfg)
        saver = tf1.train.Saver()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return saver.save(sess, os.path.join(folder, 'model.ckpt'), global_step=0)


@pytest.fixture(scope='module')
def translators(tmp_path_factory):
    """(untiled, tiled in 64 px tiles with exact statistics) Translators of one
    tiny random CycleGAN (resnet_6blocks: margins of 60 px)."""
    cfg = config.CycleGANConfig(ngf=4, netG='resnet_6blocks')
    prefix = _checkpoint(cfg, str(tmp_path_factory.mktemp('cycle_gan')))
    with inference.Translator(cfg, prefix, tile_size=0) as whole, \
            inference.Translator(cfg, prefix, tile_size=64, norm_stats_size=0) as tiled:
        yield whole, tiled


def test_translator_tiles_large_images_as_whole_ones(translators):
    whole, tiled = translators
    rgb = pipeline.to_uint8(_photo(200, 136))  # 4 x 3 tiles
    assert not whole.tiles('A', rgb.shape) and tiled.tiles('A', rgb.shape)
    assert not tiled.tiles('A', (64, 64, 3))
    for direction in ('AtoB', 'BtoA'):
        a, b = whole.translate(rgb, direction), tiled.translate(rgb, direction)
        assert a.shape == b.shape == (200, 136, 3)
        assert np.abs(a.astype(int) - b).max() <= 1
    image = (rgb / 127.5 - 1.0).astype(np.float32)
    a, b = whole('A', image), tiled('A', image)
    assert np.abs(a['reconstruction'] - b['reconstruction']).max() < 2 * LEVEL
    assert list(tiled('A', image, reconstruct=False)) == ['translation']


def test_a_colorization_translator_blends_unet_tiles(tmp_path):
    cfg = config.ColorizationConfig(ngf=4, netG='unet_128')
    prefix = _checkpoint(cfg, str(tmp_path))
    with inference.Translator(cfg, prefix, tile_size=128) as tiled:
        assert tiled.tiles('A', (130, 100))
        out = tiled.translate(pipeline.to_uint8(_photo(130, 100)))
    assert out.shape == (130, 100, 3) and out.dtype == np.uint8


def test_sample_py_takes_the_tile_flags_and_rejects_bad_ones():
    scfg = config.parse_settings(config.SampleConfig, ['sample.py', '--tile_size=256',
                                                       '--norm_stats_size=0'])
    assert (scfg.tile_size, scfg.norm_stats_size) == (256, 0)
    ecfg = config.parse_settings(config.EvaluateConfig, ['evaluate.py', '--run=x',
                                                         '--tile_size=0'])
    assert ecfg.tile_size == 0 and ecfg.norm_stats_size == inference.NORM_STATS_SIZE
    done = subprocess.run([sys.executable, 'sample.py', '--tile_size=-1'], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert 'tile_size' in done.stderr


def test_sample_py_translates_a_cut_runs_large_image_in_tiles(tmp_path, monkeypatch):
    """sample.py on a CUT run (random weights, Xavier gain 1: outputs over [-1,
    1]; resnet_6blocks: margins of 72 px), a 240x104 photo in 48 px tiles (5
    windows, none the whole image) with exact statistics: through the tiled
    generator, within one 8-bit level of --tile_size 0."""
    cfg = config.CUTConfig(ngf=4, netG='resnet_6blocks', init_gain=1.0)
    run_dir = tmp_path / 'cut'
    (run_dir / 'checkpoints').mkdir(parents=True)
    _checkpoint(cfg, str(run_dir / 'checkpoints'))
    runs.save_config(cfg, str(run_dir / 'config.json'))
    Image.fromarray(pipeline.to_uint8(_photo(240, 104))).save(tmp_path / 'photo.png')
    calls, translate = [], tiling.TiledGenerator.translate
    monkeypatch.setattr(tiling.TiledGenerator, 'translate', lambda self, *args, **kwargs: (
        calls.append(kwargs['tile']) or translate(self, *args, **kwargs)))
    written = {}
    for tile in (48, 0):
        out = tmp_path / f'tile_{tile}'
        assert sample.main(['sample.py', f'--run={run_dir}', f'--input={tmp_path / "photo.png"}',
                            '--eval', f'--tile_size={tile}', '--norm_stats_size=0',
                            f'--results_dir={out}']) == 0
        written[tile] = np.asarray(Image.open(out / 'images' / 'photo_fake_B.png'), int)
    assert calls == [48]
    assert written[48].shape == (240, 104, 3) and written[0].std() > 30
    assert np.abs(written[48] - written[0]).max() <= 1


def test_odd_images_translate_in_tiles(translators):
    """100,000 x 10 px, a 16-bit PNG and a CMYK JPEG, through Translator.translate."""
    _, tiled = translators
    wide = np.random.RandomState(0).randint(0, 256, (10, 100000, 3)).astype(np.uint8)
    deep = Image.fromarray(np.random.RandomState(1).randint(0, 65536, (70, 150)).astype(
        np.uint16))
    cmyk = Image.fromarray(wide[:, :150]).convert('CMYK')
    tiled.tile_size = 4096  # 25 tiles of the wide one
    try:
        assert tiled.translate(wide).shape == (10, 100000, 3)
    finally:
        tiled.tile_size = 64
    assert tiled.translate(deep).shape == (70, 150, 3)
    assert tiled.translate(cmyk).shape == (10, 150, 3)
