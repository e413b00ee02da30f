"""Measures the numbers README.md states about the ONNX export:
``python tools/onnx_numbers.py [--rounds 5] [--images 4]`` (needs
requirements-onnx.txt).

Trains a CycleGAN of the paper's size (ResNet-9 generator, ngf 64) one step
at 256 px in a temporary folder, exports G_A with ``--format
saved_model,onnx``, and prints the commit, the sizes of model.onnx and
model_float.onnx, and the images/s of 256 px images (batch 1, uint8 in and
out) of TensorFlow's SavedModel (serving_default) and of onnxruntime's
model.onnx on the CPU, in interleaved rounds (the order alternating), with
the median and range over the rounds, and the largest difference of their
images. The machine is shared: the times depend on what else runs (the
load average is printed with them).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 256


def run(args, cwd):
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    if done.returncode:
        sys.exit(f'{" ".join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}')


def export(work):
    """The export folder of a one-step CycleGAN (defaults: ResNet-9, ngf 64) at 256 px."""
    run([os.path.join(ROOT, 'train.py'), '--name=onnx', '--max_steps=1', '--save_freq=0',
         f'--load_size={SIZE}', f'--crop_size={SIZE}', '--runs_dir=runs',
         '--data_root=datasets'], work)
    run([os.path.join(ROOT, 'export.py'), '--run=runs/onnx', '--direction=AtoB',
         '--format=saved_model,onnx', '--export_dir=export'], work)
    return os.path.join(work, 'export')


def engines(folder):
    """{name: fn(uint8 [1, H, W, 3]) -> uint8} of TensorFlow and onnxruntime."""
    import onnxruntime
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        tf.compat.v1.saved_model.loader.load(sess, ['serve'], folder)
    model = onnxruntime.InferenceSession(os.path.join(folder, 'model.onnx'),
                                         providers=['CPUExecutionProvider'])
    return {'tensorflow': lambda x: sess.run('output_images:0', {'input_images:0': x}),
            'onnxruntime': lambda x: model.run(None, {'input_images': x})[0]}


def measure(fns, images, rounds):
    """{name: [images/s of each round]}; each round times every engine on
    ``images``, in an order that alternates from round to round."""
    speeds = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for image in images:
                fns[name](image)
            speeds[name].append(len(images) / (time.perf_counter() - start))
    return speeds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds of each engine')
    parser.add_argument('--images', type=int, default=4, help='images per round')
    options = parser.parse_args()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (1, SIZE, SIZE, 3), np.uint8) for _ in range(options.images)]
    with tempfile.TemporaryDirectory(prefix='onnx-numbers-') as work:
        folder = export(work)
        sizes = {name: os.path.getsize(os.path.join(folder, name)) / 2 ** 20
                 for name in ('model.onnx', 'model_float.onnx')}
        fns = engines(folder)
        outputs = {name: fn(images[0]) for name, fn in fns.items()}  # warm-up, and the check
        speeds = measure(fns, images, options.rounds)
    diff = np.abs(outputs['tensorflow'].astype(int) - outputs['onnxruntime'].astype(int)).max()
    print(f'commit {commit}: CycleGAN G_A (resnet_9blocks, ngf 64), {SIZE} px, batch 1, '
          f'{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f} at the end)')
    for name, mib in sizes.items():
        print(f'  {name}: {mib:.1f} MiB')
    for name, values in speeds.items():
        print(f'  {name}: {statistics.median(values):.2f} images/s (median of {options.rounds} '
              f'rounds of {options.images}; {min(values):.2f} to {max(values):.2f})')
    ratio = statistics.median(speeds['onnxruntime']) / statistics.median(speeds['tensorflow'])
    print(f'  onnxruntime / tensorflow: {ratio:.2f}; largest difference {diff} (8-bit levels)')


if __name__ == '__main__':
    main()
