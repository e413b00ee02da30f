"""Times training iterations of several models at several sizes, interleaved,
with peak memory: ``python tools/bench_models.py [--rounds 2] [--iters 3]``.

Each (model, size) is bench.py's training benchmark (random images, train.py's
session settings) in a fresh process; the rounds go through every model and
size in turn, so that the drift of a shared machine's speed spreads over all of
them. Prints one JSON line per benchmark, then per model and size the median
seconds per iteration over all its timed iterations, their minimum and
maximum, and the largest peak resident memory of its processes (MiB: TensorFlow
itself takes about 600 of them).

    MODELS: CUT, FastCUT and CycleGAN (their defaults: ResNet-9, 70x70 PatchGAN)
    SIZES:  256 px at ngf = ndf = 64, 128 px at ngf = ndf = 32
"""

import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {'CUT': ['--model=cut'], 'FastCUT': ['--model=cut', '--CUT_mode=FastCUT'],
          'CycleGAN': ['--model=cycle_gan']}
SIZES = {'256px ngf64': ['--crop_size=256', '--load_size=256', '--ngf=64', '--ndf=64'],
         '128px ngf32': ['--crop_size=128', '--load_size=128', '--ngf=32', '--ndf=32']}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(ROOT))
    from cyclegan_tf import bench
    from cyclegan_tf.running import session

    session.quiet_tensorflow()
    results = {}
    for round_ in range(args.rounds):
        for size, size_flags in SIZES.items():
            for model, model_flags in MODELS.items():
                cfg, settings = bench.parse(['bench.py', *model_flags, *size_flags,
                                             f'--iters={args.iters}', f'--warmup={args.warmup}'])
                times, _, _, memory = bench.isolated(bench.bench_train, cfg, settings)
                entry = results.setdefault((model, size), {'times': [], 'memory': []})
                entry['times'] += times
                entry['memory'].append(memory)
                print(json.dumps({'round': round_, 'model': model, 'size': size,
                                  's_per_iter': [round(t, 3) for t in times],
                                  'peak_memory_mib': round(memory)}), flush=True)
    print(f'{"model":10s} {"size":12s} {"s/iter median":>14s} {"min":>7s} {"max":>7s} '
          f'{"peak MiB":>9s}')
    for (model, size), entry in results.items():
        times = entry['times']
        print(f'{model:10s} {size:12s} {statistics.median(times):14.2f} {min(times):7.2f} '
              f'{max(times):7.2f} {max(entry["memory"]):9.0f}')


if __name__ == '__main__':
    main()
