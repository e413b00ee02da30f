"""Measures sample.py on many images and on videos, for README.md:
``python tools/stream_bench.py [--run RUN] [--counts 200,2000] [--repeats 2]``.

* Memory and speed on a folder: for each count, a folder of that many
  --size px PNGs is translated by ``sample.py --input DIR`` in a process of
  its own; its peak RSS and seconds are printed. Images/s is the slope
  between the smallest and the largest count (start-up cancels out); flat
  memory is the same peak RSS for both. ``--pythonpath`` measures another
  checkout (e.g. an older commit's files) the same way.
* Flicker: a still scene (a test image of the run's dataset) with Gaussian
  noise of --noise levels per frame, --frames frames, translated by
  evaluation/video.translate_frames; the mean absolute difference between
  consecutive frames (8-bit levels) of the input and of the translation.
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
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        yield np.clip(np.round(image + rng.normal(0, noise, image.shape)), 0, 255).astype(
            np.uint8)


def flicker(frames):
    """Mean absolute difference between consecutive frames, in 8-bit levels."""
    diffs = [np.mean(np.abs(b.astype(np.float64) - a)) for a, b in zip(frames, frames[1:])]
    return float(np.mean(diffs)), float(np.std(diffs))


def flicker_numbers(run, frames, noise):
    from cyclegan_tf import inference
    from cyclegan_tf.data import layouts, pipeline
    from cyclegan_tf.evaluation import video

    with inference.Translator.from_run(run) as translator:
        root = os.path.join(translator.cfg.data_root, translator.cfg.dataset, 'testA')
        image = pipeline.read_uint8(layouts.list_images(root)[0])
        for sigma in (0.0, noise):
            inputs = list(still_scene(image, frames, sigma))
            outputs = [out for out, _ in video.translate_frames(
                translator, 'AtoB', ((f, None) for f in inputs))]
            (fi, si), (fo, so) = flicker(inputs), flicker(outputs)
            print(f'flicker, still scene + noise sigma {sigma:g} levels, {frames} frames, '
                  f'per-frame statistics (each): input {fi:.3f} +- {si:.3f}, translation '
                  f'{fo:.3f} +- {so:.3f} levels', flush=True)


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
    parser.add_argument('--frames', type=int, default=30, help='frames of the still scene')
    parser.add_argument('--noise', type=float, default=2.0, help='its noise, 8-bit levels')
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
            flicker_numbers(run, options.frames, options.noise)
        if 'video' not in skip:
            video_numbers(run, work, options.seconds, options.size)


if __name__ == '__main__':
    main()
