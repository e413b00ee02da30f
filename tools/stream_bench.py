"""Measures sample.py on many images and on videos, for README.md:
``python tools/stream_bench.py [--run RUN] [--counts 200,2000] [--repeats 2]``.

* Memory and speed on a folder: for each count, a folder of that many
  --size px PNGs is translated by ``sample.py --input DIR`` in a process of
  its own; its peak RSS and seconds are printed. Images/s is the slope
  between the smallest and the largest count (start-up cancels out); flat
  memory is the same peak RSS for both. ``--pythonpath`` measures another
  checkout (e.g. an older commit's files) the same way.
* Flicker, for each --video_norm_stats (first, each, frame): --clips clips
  of --frames frames, each a test image of the run's dataset (the clip's
  noise seeded by its number) with fresh Gaussian noise of --noise levels per
  frame, translated by evaluation/video.translate_frames. A still scene, and
  one that pans --pan px a frame across the image and its mirror image. The
  mean absolute difference between consecutive frames (8-bit levels) of the
  input and of the translation, per clip, then its mean +- standard deviation
  over the clips (and those of its difference to frame's, clip by clip); for
  the pan also after undoing the motion (the frames compared on their
  overlap, --pan px apart, less 8 px at each side), where only flicker is
  left.
* A video: a --seconds clip at 24 fps of --size px (H.264 in .mp4) through
  ``sample.py --input clip.mp4``, in frames/s (PyAV needed; skipped without it).

Without --run it first trains one in a temporary folder: the quick start's
networks (ResNet-6, ngf 32, 64 px) on shapes2stripes for --steps steps.
The machine is shared: times depend on what else runs.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _measure(argv):
    """In the child process: runs sample.py's main on ``argv``; prints JSON."""
    from cyclegan_tf import sample

    start = time.perf_counter()
    status = sample.main(['sample.py', *argv])
    print(json.dumps({'status': status, 'seconds': time.perf_counter() - start,
                      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(argv, pythonpath=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    done = subprocess.run([sys.executable, __file__, '--measure', '--', *argv], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f'sample.py {" ".join(argv)} failed:\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_run(work, steps):
    args = [os.path.join(ROOT, 'train.py'), '--flagfile',
            os.path.join(ROOT, 'presets', 'quickstart.flags'), f'--max_steps={steps}',
            f'--runs_dir={work}/runs', f'--data_root={work}/datasets', '--name=bench']
    subprocess.run([sys.executable, *args], check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    return os.path.join(work, 'runs', 'bench')


def make_folder(folder, count, size, seed=0):
    """``count`` PNGs of ``size`` px: smooth colour fields with shapes and noise."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    for i in range(count):
        base = rng.uniform(40, 215, 3) + 40 * np.stack([x, y, x * y], -1)
        image = base + rng.normal(0, 6, (size, size, 3))
        r = rng.integers(size // 8, size // 3)
        cy, cx = rng.integers(r, size - r, 2)
        image[(y * size - cy) ** 2 + (x * size - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f'{i:05d}.png'))


def folder_numbers(run, work, counts, size, repeats, pythonpath):
    results = {}
    for count in counts:
        folder = os.path.join(work, f'in_{count}')
        make_folder(folder, count, size)
        for repeat in range(repeats):
            out = os.path.join(work, f'out_{count}_{repeat}')
            result = measure([f'--run={run}', f'--input={folder}', f'--results_dir={out}'],
                             pythonpath)
            results.setdefault(count, []).append(result)
            print(f'  {count} images: {result["seconds"]:.1f} s, peak RSS '
                  f'{result["peak_rss_mb"]:.0f} MB', flush=True)
    low, high = min(counts), max(counts)
    rates = [(high - low) / (b['seconds'] - a['seconds'])
             for a in results[low] for b in results[high]]
    print(f'folder of {size} px images: {np.mean(rates):.1f} images/s (slope {low} -> {high} '
          f'images, {min(rates):.1f} to {max(rates):.1f} over {len(rates)} pairs); peak RSS '
          + ', '.join(f'{c} images {min(r["peak_rss_mb"] for r in results[c]):.0f} to '
                      f'{max(r["peak_rss_mb"] for r in results[c]):.0f} MB' for c in counts))


def still_scene(image, frames, noise, seed=0):
    """``frames`` copies of ``image`` (uint8) with fresh Gaussian noise each."""
    return panning_scene(image, frames, noise, 0, seed)


def panning_scene(image, frames, noise, pan, seed=0):
    """``frames`` windows of ``image``'s size (uint8) moving ``pan`` px a
    frame to the right over it and its mirror image, side by side, with
    fresh Gaussian noise each."""
    rng = np.random.default_rng(seed)
    width = image.shape[1]
    copies = 1 + pan * frames // width
    wide = np.concatenate([image, image[:, ::-1]] * (copies // 2 + 1), axis=1).astype(
        np.float64)
    for index in range(frames):
        window = wide[:, pan * index:pan * index + width]
        yield np.clip(np.round(window + rng.normal(0, noise, window.shape)), 0, 255).astype(
            np.uint8)


def flicker(frames, pan=0, border=0):
    """Mean absolute difference between consecutive frames, in 8-bit levels
    (the mean over the pairs, and their standard deviation); with ``pan``,
    each frame compared to the one before moved ``pan`` px to the left, on
    their overlap less ``border`` px at each side."""
    width = frames[0].shape[1]
    diffs = [np.mean(np.abs(b[:, border:width - pan - border].astype(np.float64)
                            - a[:, pan + border:width - border]))
             for a, b in zip(frames, frames[1:])]
    return float(np.mean(diffs)), float(np.std(diffs))


def flicker_numbers(run, frames, noise, clips, pan):
    """Prints the flicker of each --video_norm_stats on --clips clips of a
    still and a panning scene (mean +- std over the clips)."""
    from cyclegan_tf import inference
    from cyclegan_tf.data import layouts, pipeline
    from cyclegan_tf.evaluation import video

    with inference.Translator.from_run(run, given_statistics=True) as translator:
        root = os.path.join(translator.cfg.data_root, translator.cfg.dataset, 'testA')
        paths = layouts.list_images(root)
        images = [pipeline.read_uint8(paths[clip % len(paths)]) for clip in range(clips)]
        for scene, step in (('still', 0), (f'panning {pan} px a frame', pan)):
            measures = [('', 0, 0)] + ([(', motion undone', pan, 8)] if step else [])
            found = _scene_flicker(translator, images, frames, noise, step, measures)
            for label, _, _ in measures:
                print(f'flicker, {scene}{label}, noise sigma {noise:g} levels, {clips} clips '
                      f'of {frames} frames: input {_spread(found["input", label])}',
                      flush=True)
                for mode in video.NORM_STATS.choices:
                    paired = np.subtract(found[mode, label], found['frame', label])
                    print(f'  --video_norm_stats {mode}: {_spread(found[mode, label])} '
                          f'({np.mean(found[mode, "seconds"]):.2f} s a clip)'
                          + ('' if mode == 'frame' else f'; minus frame\'s, clip by clip: '
                             f'{_spread(paired)}'), flush=True)


def _scene_flicker(translator, images, frames, noise, pan, measures):
    """{(mode or 'input', label): [flicker of each clip], (mode, 'seconds'): [...]}."""
    from cyclegan_tf.evaluation import video

    found = {}
    for clip, image in enumerate(images):
        inputs = list(panning_scene(image, frames, noise, pan, seed=clip))
        runs = {'input': inputs}
        for mode in video.NORM_STATS.choices:
            start = time.perf_counter()
            runs[mode] = [out for out, _ in video.translate_frames(
                translator, 'AtoB', ((f, None) for f in inputs), mode)]
            found.setdefault((mode, 'seconds'), []).append(time.perf_counter() - start)
        for name, outputs in runs.items():
            for label, shift, border in measures:
                found.setdefault((name, label), []).append(flicker(outputs, shift, border)[0])
    return found


def _spread(values):
    return (f'{np.mean(values):.3f} +- {np.std(values):.3f} (range {min(values):.3f} to '
            f'{max(values):.3f})')


def video_numbers(run, work, seconds, size):
    try:
        import av
    except ImportError:
        print('video: skipped (PyAV is not installed: pip install -r requirements-video.txt)')
        return
    clip = os.path.join(work, 'clip.mp4')
    frames = list(still_scene(np.full((size, size, 3), 128, np.uint8), int(24 * seconds), 20))
    with av.open(clip, 'w') as sink:
        stream = sink.add_stream('libx264', rate=24)
        stream.width = stream.height = size
        stream.pix_fmt = 'yuv420p'
        for frame in frames:
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
        sink.mux(stream.encode(None))
    short = os.path.join(work, 'short.mp4')
    with av.open(clip) as source, av.open(short, 'w') as sink:  # 1 s: the start-up
        stream = sink.add_stream('libx264', rate=24)
        stream.width = stream.height = size
        stream.pix_fmt = 'yuv420p'
        for i, frame in enumerate(source.decode(video=0)):
            if i < 24:
                sink.mux(stream.encode(av.VideoFrame.from_ndarray(
                    frame.to_ndarray(format='rgb24'), format='rgb24')))
        sink.mux(stream.encode(None))
    long_run = measure([f'--run={run}', f'--input={clip}', f'--results_dir={work}/v'])
    short_run = measure([f'--run={run}', f'--input={short}', f'--results_dir={work}/v1'])
    rate = (len(frames) - 24) / (long_run['seconds'] - short_run['seconds'])
    print(f'video: a {seconds:g} s clip of {size} px at 24 fps ({len(frames)} frames) in '
          f'{long_run["seconds"]:.1f} s, {rate:.1f} frames/s after start-up, peak RSS '
          f'{long_run["peak_rss_mb"]:.0f} MB (a 1 s clip: {short_run["peak_rss_mb"]:.0f} MB)')


def main():
    if sys.argv[1:2] == ['--measure']:
        return _measure(sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--run', default='', help='a run folder (default: train one)')
    parser.add_argument('--steps', type=int, default=300, help='steps of the run trained')
    parser.add_argument('--counts', default='200,2000', help='folder sizes, comma-separated')
    parser.add_argument('--size', type=int, default=64, help='image and frame size, px')
    parser.add_argument('--repeats', type=int, default=2, help='runs of each folder size')
    parser.add_argument('--frames', type=int, default=30, help='frames of each flicker clip')
    parser.add_argument('--noise', type=float, default=2.0, help='its noise, 8-bit levels')
    parser.add_argument('--clips', type=int, default=5, help='clips of each flicker scene')
    parser.add_argument('--pan', type=int, default=4, help='px a frame of the panning scene')
    parser.add_argument('--seconds', type=float, default=10.0, help='length of the video')
    parser.add_argument('--pythonpath', default='', help='PYTHONPATH of the folder runs')
    parser.add_argument('--skip', default='', help='comma-separated: folder, flicker, video')
    options = parser.parse_args()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    print(f'commit {commit}' + (f' (the folders: the code on {options.pythonpath})'
                                if options.pythonpath else ''), flush=True)
    skip = options.skip.split(',')
    with tempfile.TemporaryDirectory(prefix='stream-bench-') as work:
        run = options.run or train_run(work, options.steps)
        if 'folder' not in skip:
            counts = [int(c) for c in options.counts.split(',')]
            folder_numbers(run, work, counts, options.size, options.repeats,
                           options.pythonpath)
        if 'flicker' not in skip:
            flicker_numbers(run, options.frames, options.noise, options.clips, options.pan)
        if 'video' not in skip:
            video_numbers(run, work, options.seconds, options.size)


if __name__ == '__main__':
    main()
