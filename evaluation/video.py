"""Videos in, translated videos out: ``sample.py --input clip.mp4``.

.mp4 .mov .avi .mkv .webm are read and written with PyAV, whose wheels carry
FFmpeg (optional: ``pip install -r requirements-video.txt`` or
``pip install 'cyclegan-tf[video]'``); animated .gif with Pillow alone. Each
frame is decoded, translated by :func:`translate_frames` (as sample.py
translates an image: any size, RGB in and out; by default with the
normalization statistics of the first frame, --video_norm_stats) and
encoded as it comes, so memory does not grow with the clip's length (a
GIF's frames are held, as Pillow writes them all at once, at one byte a
pixel).

The translation, ``<out>/<name>_<fake_B>.<ext>``, has the container, frame
size and timestamps of the input (so its frame rate, constant or not), and
its display matrix (a phone's rotation, where the container holds one: not
AVI), the frames translated as they are stored, unrotated:
H.264 (VP9 in .webm; yuv444p where a side is odd, which 4:2:0 cannot hold),
the audio streams copied where the container takes their codec (else left
out, with a warning); a GIF keeps its frame durations and loop count. It is
written to a temporary file and renamed when whole: a failed run leaves an
earlier translation as it was. grid.png and index.html show up to
GRID_ROWS frames spread over the clip.

What cannot be read is a VideoError (one line, exit 2): PyAV missing, a
file that is not a video, no video stream, no frames, a truncated file
(fewer frames than it declares, or ending well before its duration).
"""

import io
import logging
import os

import numpy as np

from cyclegan_tf import config
from cyclegan_tf.data import layouts
from cyclegan_tf.evaluation import sampling, streaming
from cyclegan_tf.running import fileio

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.gif')  # any letter case
_FORMATS = {'.mp4': 'mp4', '.mov': 'mov', '.avi': 'avi', '.mkv': 'matroska', '.webm': 'webm'}
INSTALL = "pip install -r requirements-video.txt, or pip install 'cyclegan-tf[video]'"
# A clip that ends this long before its declared duration is truncated
# (beyond two frames: a last frame's duration, audio a little longer).
TRUNCATION_SLACK_S = 0.25
NORM_STATS = config.SampleConfig.options()['video_norm_stats']  # .default, .choices


class VideoError(layouts.DatasetError):
    """A video that cannot be read, or no PyAV to read it; one line."""


def is_video_file(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def check(path):
    """Before TensorFlow loads: a VideoError if ``path`` is no file, or
    needs PyAV and it is not installed."""
    if not os.path.isfile(path):
        raise VideoError(f'no video file {path}')
    if os.path.splitext(path)[1].lower() != '.gif':
        _av(path)


def _av(path):
    try:
        import av
    except ImportError:
        raise VideoError(f'reading {os.path.splitext(path)[1]} videos needs PyAV, which is '
                         f'not installed: {INSTALL}') from None
    return av


def translate_frames(translator, direction, frames, norm_stats=NORM_STATS.default):
    """The translations of a clip's frames, in order: (uint8 [H, W, C],
    tag) for each (uint8 [H, W, 3], tag) of ``frames``.

    The one place where frames are translated. ``norm_stats`` (sample.py's
    --video_norm_stats) says with which normalization statistics
    (Translator.statistics: of the whole frame, or of its thumbnail where it
    is tiled): 'first', those of the first frame for every frame (one
    statistics pass per clip); 'each', the running average of those of the
    frames so far, that frame included (:class:`RunningStatistics`; a
    statistics pass per frame); 'frame', each frame's own (each frame
    translated as an image). Where the translator gives no statistics (a
    model without Model.inference_generators) each frame has its own,
    with a warning.
    """
    if norm_stats not in NORM_STATS.choices:
        raise ValueError(f'norm_stats is one of {NORM_STATS.choices}, not {norm_stats!r}')
    running, statistics = RunningStatistics(), None
    for index, (frame, tag) in enumerate(frames):
        if norm_stats == 'each' or (norm_stats == 'first' and index == 0):
            statistics = translator.statistics(frame, direction)
            if statistics is None and index == 0:
                logger.warning('a %s model translates each frame with its own normalization '
                               'statistics: --video_norm_stats %s needs the tiled passes '
                               '(Model.inference_generators)', translator.cfg.model,
                               norm_stats)
            if norm_stats == 'each':
                statistics = running.add(statistics)
        yield translator.translate(frame, direction, statistics=statistics), tag


class RunningStatistics:
    """The pooled normalization statistics of the frames so far.

    Per layer, the mean and variance of its features over all the frames'
    pixels, as if the frames so far were one image (frames of one size weigh
    alike): the mean of the means, and the mean of the variances plus the
    variance of the means (law of total variance). The mean of the variances
    alone would understate the spread wherever the scene changes (the
    frames' means move), the frames then normalized to more contrast than
    any has; for a still scene the two agree. Kept in float64 (Welford's
    update for the means)."""

    def __init__(self):
        self.count, self.layers = 0, {}

    def add(self, statistics):
        """Adds a frame's ``statistics`` ({layer: (mean, variance)}, of
        Translator.statistics); returns the average so far, in float32
        (None for None)."""
        if statistics is None:
            return None
        self.count += 1
        average = {}
        for layer, (mean, variance) in statistics.items():
            mean, variance = np.float64(mean), np.float64(variance)
            means, spread, variances = self.layers.get(layer, (0.0, 0.0, 0.0))
            delta = mean - means
            means = means + delta / self.count
            spread = spread + delta * (mean - means)  # count x the variance of the means
            variances = variances + variance
            self.layers[layer] = (means, spread, variances)
            average[layer] = (np.float32(means),
                              np.float32((variances + spread) / self.count))
        return average


def translate_video(translator, key, path, out, *, progress=None,
                    norm_stats=NORM_STATS.default):
    """Translates the video file ``path`` from domain ``key`` into ``out``,
    with the normalization statistics ``norm_stats`` (see translate_frames).

    Returns (sampling.Results of the grid's frames, for
    sampling.write_report; the path of the translated video).
    """
    label = translator.fetches(key)['translation']
    name, ext = os.path.splitext(os.path.basename(path))
    target = os.path.join(out, f'{name}_{label}{ext.lower()}')
    os.makedirs(out, exist_ok=True)
    transcode = _transcode_gif if ext.lower() == '.gif' else _transcode_av
    direction = f'{key}to{sampling.OTHER[key]}'
    with streaming.progress_bar(None, os.path.basename(path), progress, unit='frame') as bar:
        grid = _Grid(out, name, key, label)

        def translate(frames, count):
            bar.total = count or None
            bar.refresh()
            for translation, (index, frame, tag) in translate_frames(
                    translator, direction, ((f, (i, f, t)) for i, (f, t) in enumerate(frames)),
                    norm_stats):
                translation = _rgb(translation)
                grid.offer(index, count, frame, translation)
                bar.update(1)
                yield translation, tag

        count = transcode(path, target, translate)
    results = grid.results(translator.checkpoint,
                           f'{path}, {key} -> {sampling.OTHER[key]} ({count} frames)')
    return results, target


def _rgb(image):
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


class _Grid:
    """Up to GRID_ROWS frames spread over the clip, kept as PNG files' bytes
    and written (for index.html and grid.png) once the video is whole."""

    def __init__(self, out, name, key, label):
        self.out, self.name, self.labels = out, name, [f'real_{key}', label]
        self.rows, self.files = [], []

    def offer(self, index, count, frame, translation):
        rows = min(sampling.GRID_ROWS, count) if count else sampling.GRID_ROWS
        wanted = ({round(i * (count - 1) / max(rows - 1, 1)) for i in range(rows)} if count
                  else set(range(rows)))
        if index not in wanted:
            return
        from PIL import Image

        paths = [f'images/{self.name}_{index:06d}_{label}.png' for label in self.labels]
        self.rows.append((f'frame {index}', paths))
        for image, path in zip((frame, translation), paths):
            data = io.BytesIO()
            Image.fromarray(image).save(data, format='PNG')
            self.files.append((path, data.getvalue()))

    def results(self, checkpoint, title):
        """Writes the frames' PNGs; the Results for sampling.write_report."""
        from cyclegan_tf.data import pipeline

        results = sampling.Results(self.out, checkpoint)
        results.sections.append((title, ['input', 'translation'], self.rows))
        cells = []
        for path, data in self.files:
            with fileio.atomic_write(os.path.join(self.out, path)) as f:
                f.write(data)
            cells.append(pipeline.load_image(io.BytesIO(data)))
        results.grid_rows = [cells[i:i + 2] for i in range(0, len(cells), 2)]
        results.grid_labels = [list(self.labels) for _ in results.grid_rows]
        return results


# ---------------------------------------------------------------------------
# GIF (Pillow).

def _transcode_gif(path, target, translate):
    """Translates the GIF ``path`` into ``target``; returns its frame count."""
    from PIL import Image

    try:
        source = Image.open(path)
        count, info = getattr(source, 'n_frames', 1), dict(source.info)
    except (OSError, EOFError, ValueError, SyntaxError) as e:
        raise VideoError(f'cannot read the GIF {path}: {_reason(e)}') from None
    with source:
        if source.format != 'GIF':
            raise VideoError(f'{path} is not a GIF but a {source.format} file')
        frames, durations = [], []
        for translation, duration in translate(_gif_frames(source, path), count):
            frames.append(Image.fromarray(translation).convert('P', palette=Image.ADAPTIVE))
            durations.append(duration)
    if not frames:
        raise VideoError(f'{path} holds no frames')
    extra = {'loop': info['loop']} if 'loop' in info else {}
    with fileio.atomic_write(target) as f:
        frames[0].save(f, format='GIF', save_all=True, append_images=frames[1:],
                       duration=durations, **extra)
    return len(frames)


def _gif_frames(source, path):
    """(uint8 [H, W, 3], duration in ms) of each frame of the open GIF."""
    from cyclegan_tf.data import pipeline

    for index in range(getattr(source, 'n_frames', 1)):
        try:
            source.seek(index)
            frame = pipeline.pil_uint8(source, 3)
        except (OSError, EOFError, ValueError, SyntaxError) as e:
            raise VideoError(f'cannot read frame {index} of the GIF {path} ({_reason(e)}): '
                             f'a truncated file?') from None
        yield frame, source.info.get('duration', 100)


def _reason(error):
    return ' '.join(str(getattr(error, 'strerror', None) or error).split()) or type(error).__name__


# ---------------------------------------------------------------------------
# Video containers (PyAV).

def _transcode_av(path, target, translate):
    """Translates the video ``path`` into ``target`` (its container, frame
    size and timestamps; its audio where the container takes it); returns
    the frame count."""
    av = _av(path)
    ext = os.path.splitext(target)[1].lower()
    try:
        source = av.open(path)
    except av.error.FFmpegError as e:
        raise VideoError(f'cannot read the video {path}: {_reason(e)} (not a video, or a '
                         f'truncated one?)') from None
    with source:
        if not source.streams.video:
            raise VideoError(f'{path} holds no video stream')
        stream = source.streams.video[0]
        matrix = _display_matrix(av, path)
        with fileio.atomic_write(target) as f, av.open(f, 'w', format=_FORMATS[ext]) as sink:
            encoder = _video_stream(sink, stream, ext)
            if matrix is not None:  # before the header, which the first packet writes
                encoder.set_display_matrix(matrix)
            audio = _audio_streams(sink, source, path, ext)
            frames = _demux(av, source, stream, audio, sink, path)
            count = 0
            for translation, (pts, time_base) in translate(frames, _frame_count(stream, source)):
                frame = av.VideoFrame.from_ndarray(translation, format='rgb24')
                frame.pts, frame.time_base = pts, time_base
                sink.mux(encoder.encode(frame))
                count += 1
            _check_complete(source, stream, frames.end, count, path)
            sink.mux(encoder.encode(None))
    return count


def _video_stream(sink, stream, ext):
    """The output's video stream: H.264 (VP9 in .webm) of the input's size,
    rate and time base, close to lossless."""
    codec = 'libvpx-vp9' if ext == '.webm' else 'libx264'
    encoder = sink.add_stream(codec, rate=stream.average_rate or stream.guessed_rate or 25)
    encoder.width, encoder.height = stream.codec_context.width, stream.codec_context.height
    even = encoder.width % 2 == 0 and encoder.height % 2 == 0
    encoder.pix_fmt = 'yuv420p' if even else 'yuv444p'
    encoder.time_base = stream.time_base
    encoder.options = {'crf': '30', 'b': '0'} if ext == '.webm' else {'crf': '17'}
    return encoder


def _display_matrix(av, path):
    """The display matrix of the first video stream of ``path`` (9 ints, as
    FFmpeg's AV_PKT_DATA_DISPLAYMATRIX: a phone's rotation and flips), or
    None. PyAV 18 shows it on decoded frames only (VideoFrame.side_data), so
    the first frame is decoded from the file opened a second time, before
    the translation's header is written; a file that cannot be read gives
    None here and its VideoError in the pass that translates it."""
    import struct

    try:
        with av.open(path) as source:
            for frame in source.decode(video=0):
                data = frame.side_data.get('DISPLAYMATRIX')
                return list(struct.unpack('9i', bytes(data))) if data is not None else None
    except av.error.FFmpegError:
        return None
    return None


def _audio_streams(sink, source, path, ext):
    """input audio stream -> its copy in ``sink``, for those the container takes."""
    copies = {}
    for stream in source.streams.audio:
        try:
            copies[stream] = sink.add_stream_from_template(stream)
        except ValueError:  # "'webm' format does not support 'aac' codec"
            logger.warning('the audio of %s (%s) cannot go into a %s file: the translation '
                           'has no sound', path, stream.codec_context.name, ext)
    return copies


class _demux:
    """Iterates over (uint8 [H, W, 3], (pts, time_base)) of the frames of
    ``stream``, muxing the packets of the ``audio`` streams into ``sink`` as
    they come. ``end``: the time in seconds at which the last frame ends."""

    def __init__(self, av, source, stream, audio, sink, path):
        self.av, self.source, self.stream, self.audio = av, source, stream, audio
        self.sink, self.path, self.end = sink, path, 0.0

    def __iter__(self):
        rate = self.stream.average_rate or self.stream.guessed_rate or 25
        index = 0
        try:
            for packet in self.source.demux(self.stream, *self.audio):
                if packet.stream is not self.stream:
                    if packet.dts is not None:
                        packet.stream = self.audio[packet.stream]
                        self.sink.mux(packet)
                    continue
                for frame in packet.decode():
                    pts, time_base = ((frame.pts, frame.time_base) if frame.pts is not None
                                      else (index, 1 / rate))
                    self.end = float(pts * time_base) + 1 / float(rate)
                    index += 1
                    yield frame.to_ndarray(format='rgb24'), (pts, time_base)
        except self.av.error.FFmpegError as e:
            raise VideoError(f'cannot read frame {index} of {self.path}: {_reason(e)} (a '
                             f'truncated or damaged file?)') from None


def _frame_count(stream, source):
    """The frames the clip declares, or its duration times its rate; 0 if unknown."""
    if stream.frames:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    duration = _duration(stream, source)
    return round(duration * float(rate)) if rate and duration else 0


def _duration(stream, source):
    """Seconds, of the stream where it says, else of the container; 0 if unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return source.duration / 1e6 if source.duration else 0.0


def _check_complete(source, stream, end, count, path):
    if not count:
        raise VideoError(f'{path} holds no video frames')
    if stream.frames and count < stream.frames:
        raise VideoError(f'{path} is truncated: {count} of its {stream.frames} frames can be '
                         f'read')
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    duration = _duration(stream, source)
    if duration and end < duration - 2 / rate - TRUNCATION_SLACK_S:
        raise VideoError(f'{path} is truncated: its frames end at {end:.2f} s of its '
                         f'{duration:.2f} s')
