"""Measures how long demo.py's page takes to answer, as README.md quotes it:
``python tools/demo_response_times.py [--run RUN] [--repeats 5]``.

Without --run it makes a full-size CycleGAN run (ngf 64, ResNet-9, trained
one step on the built-in shapes2stripes in a temporary folder: its weights
do not matter for the time). It serves that run's page on 127.0.0.1 as
demo.py does and sends, through Gradio's Python client, --repeats requests
of a random image of each --sizes (one request first, untimed, for the
graph's warm-up), one at a time; it prints the commit, each size's median,
min and max round-trip time (upload, queue, translation and
reconstruction, PNG download) and the translator's own time for the same
image. Needs requirements-demo.txt. The machine is shared: the times depend
on what else runs.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_run(folder):
    from cyclegan_tf import train
    from cyclegan_tf.data import shapes

    data_root = os.path.join(folder, 'datasets')
    shapes.generate_shapes2stripes(os.path.join(data_root, shapes.BUILTIN), n_train=2, n_test=2)
    assert train.main(['train.py', f'--runs_dir={folder}/runs', f'--data_root={data_root}',
                       '--name=full', '--max_steps=1', '--print_freq=1']) == 0
    return os.path.join(folder, 'runs', 'full')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def spread(times):
    return (f'median {statistics.median(times):.2f} s, min {min(times):.2f}, '
            f'max {max(times):.2f} ({len(times)} requests)')


def measure(run_dir, sizes, repeats, folder, translator=True):
    import gradio as gr
    from gradio_client import Client, handle_file

    from cyclegan_tf import config, demo

    dcfg = config.DemoConfig(run=run_dir, port=_free_port(), max_size=max(sizes))
    page = demo.Page(dcfg, run_dir, None)
    app = demo.build(gr, page)
    demo.launch(app, dcfg, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f'http://127.0.0.1:{dcfg.port}/', verbose=False)
        rng = np.random.default_rng(0)
        for size in sizes:
            path = os.path.join(folder, f'{size}.png')
            Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(path)
            client.predict(handle_file(path), 'AtoB', api_name='/translate')  # warm-up
            page_times, model_times = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                client.predict(handle_file(path), 'AtoB', api_name='/translate')
                page_times.append(time.perf_counter() - start)
                print(f'  {size} px: page {page_times[-1]:.2f} s', flush=True)
                if translator:
                    start = time.perf_counter()
                    page.model.results(Image.open(path), 'AtoB')
                    model_times.append(time.perf_counter() - start)
            alone = f'; translator alone {spread(model_times)}' if model_times else ''
            print(f'{size}x{size} px: page {spread(page_times)}{alone}', flush=True)
    finally:
        app.close()
        page.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', default='', help='a run folder (default: a new ngf-64 run)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--sizes', default='256,1024')
    parser.add_argument('--translator', action=argparse.BooleanOptionalAction, default=True,
                        help="also time the translator alone (default: on)")
    args = parser.parse_args()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    print(f'commit {commit}, {os.cpu_count()} CPUs')
    with tempfile.TemporaryDirectory() as folder:
        run_dir = args.run or make_run(folder)
        measure(run_dir, [int(s) for s in args.sizes.split(',')], args.repeats, folder,
                args.translator)


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    sys.exit(main())
