"""Peak memory and time of translating large photos, tiled and whole, with a
full-size CycleGAN generator (ResNet-9, ngf 64, random weights: the cost does
not depend on them): ``python tools/tile_bench.py``.

Each measurement runs in a process of its own (``--child``), which reports
its peak RSS (getrusage) and the seconds of Translator.translate; the parent
watches the child's RSS and kills it above ``--cap_gb`` (then the row says
so). The photos are a horse2zebra_mini test image (../shared/data) upscaled
bicubically. ``--accuracy`` instead compares, at 1024 and 2048 px, tiled
translations whose statistics come from a 512 px copy (--norm_stats_size
512) with those of exact statistics (0): PSNR and the largest difference in
8-bit levels, over the 8-bit outputs (with --max_tiles N: over the first N
tiles of the first row of tiles).

    python tools/tile_bench.py --sizes 1024,2048 --repeats 3
    python tools/tile_bench.py --accuracy
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
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, '..', '..', 'shared', 'data', 'horse2zebra_mini', 'testA')


def photo(height, width, index=0):
    """uint8 [height, width, 3]: a test photo upscaled bicubically."""
    names = sorted(os.listdir(PHOTOS))
    with Image.open(os.path.join(PHOTOS, names[index % len(names)])) as image:
        return np.asarray(image.convert('RGB').resize((width, height), Image.BICUBIC))


def checkpoint(folder):
    """(cfg, prefix): a full-size CycleGAN's inference networks, random weights."""
    import tensorflow as tf

    from cyclegan_tf import config, registry

    cfg = config.CycleGANConfig()
    prefix = os.path.join(folder, 'model.ckpt-0')
    if not os.path.exists(prefix + '.index'):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(0)
            registry.of(cfg).model_class.build_inference(cfg)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                tf.compat.v1.train.Saver().save(sess, prefix)
    return cfg, prefix


def child(args):
    """Translates one photo; prints {seconds, peak_rss_gb} as one JSON line."""
    from cyclegan_tf import inference
    from cyclegan_tf.running import session

    session.graph_mode()
    cfg, prefix = checkpoint(args.folder)
    image = photo(args.height, args.width)
    with inference.Translator(cfg, prefix, tile_size=args.tile_size,
                              norm_stats_size=args.norm_stats_size) as translator:
        times, total = [], []
        translator.on_tile = lambda done, count: bool(
            times.append(time.perf_counter()) or total.append(count)
            or done >= (args.max_tiles or count))
        start = time.perf_counter()
        out = translator.translate(image)
        seconds = time.perf_counter() - start
    assert out.shape == image.shape
    result = {'seconds': round(seconds, 1)}
    if times:  # tiled: the stats pass and the first tile, then one tile after another
        first, count = times[0] - start, total[0]
        per_tile = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else first
        result.update(tiles=f'{len(times)}/{count}', seconds_per_tile=round(per_tile, 1),
                      seconds_all_tiles=round(first + (count - 1) * per_tile, 1))
    result['peak_rss_gb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)
    print(json.dumps(result))


def rss_gb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def measure(folder, height, width, tile_size, norm_stats_size, cap_gb, max_tiles=0):
    """One child's result, or {'over_cap': GB} where it was killed."""
    command = [sys.executable, __file__, '--child', '--folder', folder, '--height', str(height),
               '--width', str(width), '--tile_size', str(tile_size),
               '--norm_stats_size', str(norm_stats_size), '--max_tiles', str(max_tiles)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    while process.poll() is None:
        if rss_gb(process.pid) > cap_gb:
            process.kill()
            process.wait()
            return {'over_cap_gb': cap_gb}
        time.sleep(0.1)
    lines = process.stdout.read().strip().splitlines()
    if process.returncode or not lines:
        return {'failed': process.returncode}
    return json.loads(lines[-1])


def size_of(text):
    height, _, width = text.partition('x')
    return (int(height), int(width or height))


def bench(args):
    rows = []
    for text in args.sizes.split(','):
        height, width = size_of(text)
        for tile_size in [{'tiled': args.tile_size, 'whole': 0}[m] for m in args.modes.split(',')]:
            if tile_size == 0 and height * width > args.max_whole ** 2:
                continue
            results = [measure(args.folder, height, width, tile_size, args.norm_stats_size,
                               args.cap_gb, args.max_tiles) for _ in range(args.repeats)]
            row = {'size': f'{height}x{width}', 'tile_size': tile_size,
                   'norm_stats_size': args.norm_stats_size, 'runs': results}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def accuracy(args):
    """PSNR and max difference of 512 px statistics against exact ones."""
    from cyclegan_tf import inference
    from cyclegan_tf.running import session

    session.graph_mode()
    cfg, prefix = checkpoint(args.folder)
    with inference.Translator(cfg, prefix, tile_size=args.tile_size,
                              norm_stats_size=0) as translator:
        tiles = args.max_tiles or 10 ** 9  # the first tiles of the first row of tiles
        translator.on_tile = lambda done, count: done >= tiles
        for size in (1024, 2048):
            for index in range(args.photos):
                image = photo(size, size, index)
                outputs = []
                for stats_size in (0, 512):
                    translator.norm_stats_size = stats_size
                    outputs.append(translator.translate(image).astype(np.float64)[
                        :args.tile_size, :tiles * args.tile_size])
                reference, thumb = outputs
                mse = np.mean((reference - thumb) ** 2)
                print(json.dumps({'size': size, 'photo': index,
                                  'psnr_db': round(10 * np.log10(255.0 ** 2 / mse), 2),
                                  'max_levels': int(np.abs(reference - thumb).max()),
                                  'mean_levels': round(float(np.abs(reference - thumb).mean()),
                                                       3)}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='1024,2048,4096,6000x8000',
                        help='photo sizes, N or HxW, comma-separated')
    parser.add_argument('--tile_size', type=int, default=512)
    parser.add_argument('--norm_stats_size', type=int, default=512)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--modes', default='tiled,whole', help='tiled, whole or both')
    parser.add_argument('--cap_gb', type=float, default=12.0,
                        help='kill a measurement whose RSS passes this many GiB')
    parser.add_argument('--max_tiles', type=int, default=0,
                        help='translate only the first N tiles of each photo, and extrapolate '
                             'the seconds of all (0: all tiles)')
    parser.add_argument('--max_whole', type=int, default=4096,
                        help='translate photos whole only up to this many pixels squared')
    parser.add_argument('--accuracy', action='store_true')
    parser.add_argument('--photos', type=int, default=3, help='with --accuracy')
    parser.add_argument('--folder', default=os.path.join(tempfile.gettempdir(),
                                                         'cyclegan_tile_bench'))
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--height', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--width', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    if args.child:
        return child(args)
    if args.accuracy:
        return accuracy(args)
    checkpoint(args.folder)
    bench(args)


if __name__ == '__main__':
    sys.exit(main())
