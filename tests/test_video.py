"""sample.py --input on videos: tiny clips made here (32 px, a few frames, with
and without audio) come back translated with their size, frame rate and
audio; animated GIFs as GIFs; bad files are one line, exit 2, and leave an
earlier translation as it was. Without PyAV: one line saying how to install it.
--video_norm_stats: every frame with the first frame's statistics, their
running average or its own, whole or in tiles."""

import os
import sys

import numpy as np
import pytest
from PIL import Image
from test_tiling import _checkpoint
from test_train import make_data_root, tiny_args

from cyclegan_tf import config, inference, sample, train
from cyclegan_tf.evaluation import video


def _require_av():
    """PyAV (requirements-video.txt); skips naming it where it is missing,
    fails instead when CI=true (.ci/run installs it)."""
    try:
        import av
    except ImportError:
        message = 'PyAV (the av package, requirements-video.txt) is not installed'
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return av


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny CycleGAN run trained 2 steps: its folder."""
    data_root = make_data_root(tmp_path_factory.mktemp('datasets'))
    runs_dir = tmp_path_factory.mktemp('runs')
    assert train.main(tiny_args(runs_dir, data_root, '--max_steps=2')) == 0
    return os.path.join(runs_dir, 'tiny')


@pytest.fixture(scope='module')
def translator(run):
    with inference.Translator.from_run(run) as translator:
        yield translator


def _frames(count, height=32, width=32):
    """Distinct frames: a bar that moves and a brightness that grows."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 20 * i % 200, np.uint8)
        frame[:, i % width:i % width + 6] = (255, 40, 40)
        frames.append(frame)
    return frames


def make_video(path, count=6, *, size=(32, 32), rate=12, audio=None, options=None,
               rotation=None):
    """Writes a clip of ``count`` frames (H.264, VP9 in .webm) with, if
    ``audio`` names a codec, a tone as long as the clip, and with a display
    matrix of ``rotation`` (degrees, hflip) where given, as phones write."""
    av = _require_av()
    ext = os.path.splitext(path)[1]
    with av.open(str(path), 'w', format=video._FORMATS[ext], options=options or {}) as sink:
        stream = sink.add_stream('libvpx-vp9' if ext == '.webm' else 'libx264', rate=rate)
        stream.height, stream.width = size
        stream.pix_fmt = 'yuv420p' if size[0] % 2 == 0 == size[1] % 2 else 'yuv444p'
        sound = sink.add_stream(audio, rate=44100) if audio else None
        if rotation:
            stream.set_display_rotation(rotation[0], hflip=rotation[1])
        sink.start_encoding()
        for frame in _frames(count, *size):
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
        sink.mux(stream.encode(None))
        if sound:
            _add_tone(av, sink, sound, count / rate)
    return str(path)


def _add_tone(av, sink, sound, seconds):
    """Encodes ``seconds`` of a 440 Hz tone into the audio stream ``sound``."""
    t = np.arange(int(44100 * seconds)) / 44100
    tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(
        np.float32)[None], format='flt', layout='mono')
    tone.sample_rate = 44100
    sink.mux(sound.encode(tone))
    sink.mux(sound.encode(None))


def make_sound(path):
    """A clip of sound only (AAC)."""
    av = _require_av()
    with av.open(str(path), 'w') as sink:
        _add_tone(av, sink, sink.add_stream('aac', rate=44100), 0.1)
    return str(path)


def _text(path):
    path.write_text('no video')
    return path


def _png(path):
    Image.new('RGB', (8, 8)).save(path, 'PNG')
    return path


def _read(path):
    """(frames, average rate, audio codec names) of a clip."""
    av = _require_av()
    with av.open(str(path)) as source:
        frames = [f.to_ndarray(format='rgb24') for f in source.decode(video=0)]
        stream = source.streams.video[0]
        return frames, stream.average_rate, [s.codec_context.name for s in source.streams.audio]


def test_a_clip_with_sound_comes_back_translated_with_its_rate_size_and_sound(
        run, tmp_path, capsys):
    clip = make_video(tmp_path / 'clip.mp4', 6, audio='aac')
    out = tmp_path / 'out'
    assert sample.main(['sample.py', f'--run={run}', f'--input={clip}',
                        f'--results_dir={out}']) == 0
    assert f'Wrote {out / "clip_fake_B.mp4"}' in capsys.readouterr().out
    frames, rate, audio = _read(out / 'clip_fake_B.mp4')
    originals, original_rate, _ = _read(clip)
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3)
    assert rate == original_rate == 12 and audio == ['aac']
    assert np.abs(frames[3].astype(int) - originals[3]).mean() > 5  # translated, not copied
    page = (out / 'index.html').read_text()
    assert page.count('<tr>') == 1 + 6 and 'images/clip_000005_fake_B.png' in page
    assert np.asarray(Image.open(out / 'grid.png')).shape[0] > 6 * 32


@pytest.mark.parametrize('name,size,audio', [('odd.webm', (31, 33), None),
                                             ('clip.mkv', (32, 32), 'aac'),
                                             ('clip.avi', (32, 48), None),
                                             ('clip.mov', (32, 32), 'aac')])
def test_each_container_keeps_its_frames_size_and_audio(translator, tmp_path, name, size, audio):
    clip = make_video(tmp_path / name, 5, size=size, audio=audio)
    _, target = video.translate_video(translator, 'A', clip, str(tmp_path / 'out'),
                                      progress=False)
    assert os.path.basename(target) == name.replace('.', '_fake_B.')
    frames, rate, codecs = _read(target)
    assert len(frames) == 5 and frames[0].shape == size + (3,)
    assert rate == 12 and codecs == ([audio] if audio else [])
    assert _rotation(target) == (None, 0)  # no display matrix given, none made


def _rotation(path):
    """(the display matrix of a clip's first frame, 9 ints or None; its rotation)."""
    av = _require_av()
    with av.open(str(path)) as source:
        frame = next(source.decode(video=0))
        data = frame.side_data.get('DISPLAYMATRIX')
        return (list(np.frombuffer(bytes(data), np.int32)) if data is not None else None,
                frame.rotation)


@pytest.mark.parametrize('name,rotation,audio', [('phone.mp4', (90, False), 'aac'),
                                                 ('phone.mov', (-90, True), None),
                                                 ('phone.mkv', (180, False), 'aac'),
                                                 ('phone.webm', (90, False), None)])
def test_a_phones_rotation_and_flips_are_kept(translator, tmp_path, name, rotation, audio):
    clip = make_video(tmp_path / name, 3, size=(32, 48), audio=audio, rotation=rotation)
    matrix, degrees = _rotation(clip)
    assert matrix is not None and (rotation[1] or (degrees - rotation[0]) % 360 == 0)
    _, target = video.translate_video(translator, 'A', clip, str(tmp_path / 'out'),
                                      progress=False)
    assert _rotation(target) == (matrix, degrees)
    frames, _, _ = _read(target)
    assert frames[0].shape == (32, 48, 3)  # stored as the input is, unrotated


def test_an_animated_gif_is_translated_as_a_gif_without_pyav(translator, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'av', None)  # GIFs need Pillow only
    frames = [Image.fromarray(f) for f in _frames(4, 24, 20)]
    gif = tmp_path / 'anim.gif'
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=[80, 160, 80, 240],
                   loop=0)
    video.check(str(gif))
    results, target = video.translate_video(translator, 'A', str(gif), str(tmp_path / 'out'))
    with Image.open(target) as out:
        durations = []
        for i in range(out.n_frames):
            out.seek(i)
            durations.append(out.info['duration'])
        assert out.size == (20, 24) and out.info['loop'] == 0
    assert durations == [80, 160, 80, 240]
    assert len(results.grid_rows) == 4


def test_without_pyav_a_video_is_one_line_saying_how_to_install_it(
        run, tmp_path, capsys, monkeypatch):
    clip = tmp_path / 'clip.mp4'
    clip.write_bytes(b'whatever')
    monkeypatch.setitem(sys.modules, 'av', None)
    assert sample.main(['sample.py', f'--run={run}', f'--input={clip}']) == 2
    err = capsys.readouterr().err
    assert err == ('sample.py: error: reading .mp4 videos needs PyAV, which is not installed: '
                   "pip install -r requirements-video.txt, or pip install 'cyclegan-tf[video]'\n")


def test_a_missing_video_fails_before_tensorflow_loads(tmp_path):
    with pytest.raises(video.VideoError, match='no video file .*nothing.mp4'):
        video.check(str(tmp_path / 'nothing.mp4'))
    assert video.is_video_file('A.MKV') and not video.is_video_file('a.png')


def _cut(path, fraction):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return path


def _gif(path):
    frames = [Image.fromarray(f) for f in _frames(3, 16, 16)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


BAD = {
    'a truncated mp4': lambda d: _cut(make_video(d / 'cut.mp4', 12), 0.6),
    'a truncated mp4, index first': lambda d: _cut(make_video(
        d / 'fast.mp4', 12, options={'movflags': 'faststart'}), 0.9),
    'a truncated mkv': lambda d: _cut(make_video(d / 'cut.mkv', 24), 0.5),
    'a zero-frame mkv': lambda d: make_video(d / 'zero.mkv', 0),
    'an audio-only mp4': lambda d: make_sound(d / 'sound.mp4'),
    'a text file named .webm': lambda d: _text(d / 'text.webm'),
    'a truncated GIF': lambda d: _cut(_gif(d / 'cut.gif'), 0.5),
    'a PNG named .gif': lambda d: _png(d / 'png.gif'),
}


@pytest.mark.parametrize('kind', sorted(BAD))
def test_bad_videos_are_a_video_error_and_keep_the_earlier_translation(translator, tmp_path,
                                                                       kind):
    if 'GIF' not in kind and '.gif' not in kind:
        _require_av()
    path = str(BAD[kind](tmp_path))
    name, ext = os.path.splitext(os.path.basename(path))
    out = tmp_path / 'out'
    out.mkdir()
    earlier = out / f'{name}_fake_B{ext}'
    earlier.write_bytes(b'an earlier, good translation')
    with pytest.raises(video.VideoError) as error:
        video.translate_video(translator, 'A', path, str(out), progress=False)
    assert path in str(error.value) and '\n' not in str(error.value)
    assert earlier.read_bytes() == b'an earlier, good translation'
    assert sorted(os.listdir(out)) == [earlier.name]  # no temporary file left


def test_a_bad_video_is_one_line_and_exit_2(run, tmp_path, capsys):
    clip = _cut(make_video(tmp_path / 'cut.mp4', 12), 0.6)
    assert sample.main(['sample.py', f'--run={run}', f'--input={clip}',
                        f'--results_dir={tmp_path / "out"}']) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f'sample.py: error: cannot read the video {clip}')


def test_audio_the_container_cannot_hold_is_left_out_with_a_warning(tmp_path, caplog):
    av = _require_av()
    clip = make_video(tmp_path / 'clip.mp4', 2, audio='aac')
    with av.open(clip) as source, av.open(str(tmp_path / 'x.webm'), 'w') as sink:
        assert video._audio_streams(sink, source, clip, '.webm') == {}
    assert 'cannot go into a .webm file: the translation has no sound' in caplog.text


# ---------------------------------------------------------------------------
# --video_norm_stats: first, each, frame.

class _Whole:
    """A tiling Translator as one with tile_size 0 and given_statistics (the
    same graph: its tile passes; no Translator built for it)."""

    def __init__(self, translator):
        self.translator = translator

    def __getattr__(self, name):
        return getattr(self.translator, name)

    def translate(self, *args, **kwargs):
        return self._whole('translate', *args, **kwargs)

    def statistics(self, *args, **kwargs):
        return self._whole('statistics', *args, **kwargs)

    def _whole(self, method, *args, **kwargs):
        tile_size, self.translator.tile_size = self.translator.tile_size, 0
        try:
            return getattr(self.translator, method)(*args, **kwargs)
        finally:
            self.translator.tile_size = tile_size


@pytest.fixture
def translators(translator):
    """(whole, tiled): the module's translator as one with tile_size 0 and
    given_statistics, and the same in 16 px tiles."""
    tile_size, translator.tile_size = translator.tile_size, 16
    yield _Whole(translator), translator
    translator.tile_size = tile_size


def _translated(translator, frames, norm_stats):
    return [out for out, _ in video.translate_frames(
        translator, 'AtoB', ((f, None) for f in frames), norm_stats)]


def _most(a, b):
    """The largest difference of two uint8 images, in levels."""
    return np.abs(a.astype(int) - b).max()


def test_first_translates_every_frame_with_the_first_frames_statistics(translators):
    whole, tiled = translators
    frames = _frames(4, 32, 40)
    first = _translated(whole, frames, 'first')
    statistics = whole.statistics(frames[0])
    assert len(statistics) == 17  # the instance norms of G_A (resnet_6blocks)
    assert all(np.array_equal(out, whole.translate(frame, statistics=statistics))
               for out, frame in zip(first, frames))
    own = [whole.translate(frame) for frame in frames]
    assert _most(first[0], own[0]) <= 1 and min(_most(a, b) for a, b in zip(first[1:],
                                                                            own[1:])) > 5
    assert tiled.tiles('A', frames[0].shape)  # frames in tiles: the same statistics
    assert max(_most(a, b) for a, b in zip(_translated(tiled, frames, 'first'), first)) <= 1


def test_each_translates_each_frame_with_the_running_average_of_the_statistics(
        translators):
    whole, tiled = translators
    frames = _frames(4, 32, 40)
    each = _translated(whole, frames, 'each')
    seen = [whole.statistics(frame) for frame in frames]
    for count, (out, frame) in enumerate(zip(each, frames), 1):
        pooled = {}  # the moments of the frames so far as one image
        for layer in seen[0]:
            means = np.array([s[layer][0] for s in seen[:count]], np.float64)
            squares = np.array([s[layer][1] for s in seen[:count]], np.float64) + means ** 2
            pooled[layer] = (means.mean(0), squares.mean(0) - means.mean(0) ** 2)
        assert _most(out, whole.translate(frame, statistics=pooled)) <= 1
    first = _translated(whole, frames, 'first')
    assert _most(each[0], first[0]) == 0 and _most(each[3], first[3]) > 5
    assert max(_most(a, b) for a, b in zip(_translated(tiled, frames, 'each'), each)) <= 1


def test_frame_translates_each_frame_as_an_image(translators):
    for translator in translators:
        frames = _frames(3, 32, 40)
        assert all(np.array_equal(out, translator.translate(frame))
                   for out, frame in zip(_translated(translator, frames, 'frame'), frames))
    with pytest.raises(ValueError, match="not 'last'"):
        _translated(translator, frames, 'last')


@pytest.mark.parametrize('model_cfg,eval', [
    (config.Pix2PixConfig(ngf=4, netG='resnet_6blocks', norm='none'), False),
    (config.Pix2PixConfig(ngf=4, netG='resnet_6blocks', norm='batch'), True)])
def test_networks_without_image_statistics_translate_frames_as_images(tmp_path, model_cfg,
                                                                      eval):
    prefix = _checkpoint(model_cfg, str(tmp_path))
    frames = _frames(2, 16, 20)
    with inference.Translator(model_cfg, prefix, training=not eval, tile_size=0,
                              given_statistics=True) as translator:
        assert translator.statistics(frames[0]) == {}
        own = _translated(translator, frames, 'frame')
        for norm_stats in ('first', 'each'):
            assert all(_most(a, b) <= 1 for a, b in zip(
                _translated(translator, frames, norm_stats), own))


def test_a_translator_without_the_tile_passes_translates_each_frame_with_a_warning(
        translators, caplog, monkeypatch):
    whole, tiled = translators
    frames = _frames(2)
    own = _translated(whole, frames, 'frame')
    monkeypatch.setattr(tiled, 'tiled', {})  # as a model without inference_generators
    assert whole.statistics(frames[0]) is None
    assert all(np.array_equal(a, b) for a, b in zip(_translated(whole, frames, 'first'), own))
    assert 'translates each frame with its own normalization statistics' in caplog.text


def test_sample_py_passes_video_norm_stats_and_rejects_other_values(
        run, tmp_path, capsys, monkeypatch):
    assert config.SampleConfig().video_norm_stats == 'first'
    assert 'video_norm_stats' not in config.DemoConfig.options()  # the demo shows no videos
    seen = []

    def spy(translator, direction, frames, norm_stats):
        seen.append((norm_stats, bool(translator.tiled)))
        return translate_frames(translator, direction, frames, norm_stats)

    translate_frames = video.translate_frames
    monkeypatch.setattr(video, 'translate_frames', spy)
    clip = make_video(tmp_path / 'clip.mp4', 2)
    assert sample.main(['sample.py', f'--run={run}', f'--input={clip}', '--tile_size=0',
                        f'--results_dir={tmp_path / "out"}', '--video_norm_stats=each']) == 0
    assert seen == [('each', True)]  # the tile passes built, for the statistics
    capsys.readouterr()
    assert sample.main(['sample.py', f'--run={run}', f'--input={clip}',
                        '--video_norm_stats=last']) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ['sample.py: error: flag --video_norm_stats=last: value should be one of '
                   '<first|each|frame>']
