"""Translates images with a trained run: ``python sample.py --run runs/<name>``.

Rebuilds the generators from the run's config.json (no architecture flags to
repeat) and restores its latest checkpoint, or --checkpoint. Translates the
test split of the run's dataset in every direction the model has, or
--input FILE_OR_DIR with --direction, and writes to <run>/test_<step>/
(or --results_dir): images/<name>_real_A.png, _fake_B.png, _rec_A.png, ...,
index.html (input | translation | reconstruction | ground truth) and
grid.png. Images of any size are padded (reflected) to the network's
multiple and cropped back.

Where the test split has a ground truth (the built-in shapes2stripes pairs
testA/NNNN.png with testB/NNNN.png; a pix2pix pair file holds its target) it
prints the mean L1 distance and PSNR of the translations to it, next to the
baseline output = input. Both are computed on the 8-bit images written,
scaled to [0, 1].

Exit status: 0 done; 2 a bad command line or run (one line on stderr).
"""

import json
import math
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # see train.py

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

import config  # noqa: E402
import datasets  # noqa: E402
import runs  # noqa: E402
import train  # noqa: E402

OTHER = {'A': 'B', 'B': 'A'}
GRID_ROWS = 8  # images per direction in grid.png


class Item:
    """One image to translate: its name, the file(s) it comes from, and how
    to read the network input and the ground truth (None if there is none)."""

    def __init__(self, name, load):
        self.name, self.load = name, load


def parse(argv):
    """The SampleConfig of the command line ``argv`` (argv[0]: the program)."""
    flag_values = config.define_flags(flags.FlagValues(), settings=config.SampleConfig)
    config.parse_argv(flag_values, argv)
    return config.settings_from_flags(config.SampleConfig, flag_values)


def jobs(cfg, scfg):
    """[(input key, title, [Item])]: what to translate. TensorFlow-free (the
    items load their images when asked), so that a missing file is reported
    before TensorFlow is imported."""
    if scfg.input:
        if os.path.isdir(scfg.input):
            paths = datasets.list_images(scfg.input)
        elif os.path.isfile(scfg.input) and datasets.is_image_file(scfg.input):
            paths = [scfg.input]
        else:
            raise runs.RunError(f'no image file or folder {scfg.input}')
        if not paths:
            raise runs.RunError(f'no images in {scfg.input}')
        key = scfg.direction[0]
        return [(key, f'{scfg.input}, {key} -> {OTHER[key]}', _limit(
            [_unaligned_item(cfg, key, path, None) for path in paths], scfg))]
    root = datasets.prepare(cfg, split='test')
    layout = datasets.layout_of(cfg)
    if layout == datasets.UNALIGNED:
        return [(key, f'test{folder} ({key} -> {OTHER[key]})',
                 _limit(items, scfg)) for key, folder, items in _unaligned_test(cfg, root)]
    folder = os.path.join(root, 'test')
    paths = datasets.list_images(folder)
    if not paths and layout == datasets.COLORIZATION:  # the domains of an unaligned set
        paths = [p for d in 'AB' for p in datasets.list_images(os.path.join(root, 'test' + d))]
    make = _aligned_item if layout == datasets.ALIGNED else _colorization_item
    return [('A', f'test ({"A -> B" if layout == datasets.ALIGNED else "colorization"})',
             _limit([make(cfg, path) for path in paths], scfg))]


def _limit(items, scfg):
    return items[:scfg.num_test] if scfg.num_test > 0 else items


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _unaligned_item(cfg, key, path, truth_path):
    import data

    channels = {'A': cfg.input_nc, 'B': cfg.output_nc}

    def load():
        other = OTHER[key]
        truth = None if truth_path is None else data.load_image(truth_path, channels[other])
        return data.load_image(path, channels[key]), truth
    return Item(_stem(path), load)


def _unaligned_test(cfg, root):
    """(key, folder name, [Item]) of testA and testB; after --direction BtoA
    the model's A is testB. An image's ground truth is the file of the same
    name in the other domain (datasets.ground_truth_pairs)."""
    folders = {'A': 'A', 'B': 'B'} if cfg.direction == 'AtoB' else {'A': 'B', 'B': 'A'}
    pairs = datasets.ground_truth_pairs(root, 'test')
    truth = {**{a: b for a, b in pairs}, **{b: a for a, b in pairs}}
    result = []
    for key in 'AB':
        paths = datasets.list_images(os.path.join(root, 'test' + folders[key]))
        result.append((key, folders[key], [_unaligned_item(cfg, key, p, truth.get(p))
                                           for p in paths]))
    return result


def _aligned_item(cfg, path):
    """A pix2pix pair file: the input half and its target (after --direction)."""
    import data

    def load():
        pair = data.load_image(path, 3)
        half = pair.shape[1] // 2
        a, b = pair[:, :half], pair[:, half:2 * half]
        if cfg.direction == 'BtoA':
            a, b = b, a
        return _channels(a, cfg.input_nc), _channels(b, cfg.output_nc)
    return Item(_stem(path), load)


def _channels(image, channels):
    """[H, W, 3] in [-1, 1] -> [H, W, channels]: 1 is ITU-R 601 luma."""
    if channels == 3:
        return image
    return (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def _colorization_item(cfg, path):
    """A photo: the input is its lightness (L / 50 - 1), the ground truth the photo."""
    import data

    def load():
        rgb = data.load_image(path, 3)
        lab = data.rgb_to_lab((rgb + 1.0) / 2.0)
        return (lab[..., :1] / 50.0 - 1.0).astype(np.float32), rgb
    return Item(_stem(path), load)


def generator_multiple(cfg):
    """The multiple of the generators' input sizes (4 for ResNets, 256 for unet_256)."""
    import tensorflow as tf

    import modules

    with tf.Graph().as_default():  # a throwaway network, for its attribute
        return modules.define_G(cfg, 'G').multiple


def pad_to(image, multiple):
    """``image`` [H, W, C] reflected at the bottom and right to multiples of ``multiple``."""
    height, width = image.shape[:2]
    return np.pad(image, [(0, -height % multiple), (0, -width % multiple), (0, 0)],
                  mode='reflect')


class Translator:
    """The inference graph of a run, restored from a checkpoint."""

    def __init__(self, cfg, checkpoint, *, training):
        import tensorflow as tf

        import model as models

        tf1 = tf.compat.v1
        tf1.disable_eager_execution()  # TF1 graph code, as train.py
        tf.get_logger().setLevel('ERROR')
        if cfg.model not in models.MODELS:
            raise runs.RunError(f'unknown model {cfg.model!r} in the run\'s config')
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs, self.outputs = models.MODELS[cfg.model].build_inference(
                cfg, training=training)
            variables = tf1.global_variables()
            saver = tf1.train.Saver(variables)
        self.graph.finalize()
        self.sess = tf1.Session(graph=self.graph, config=train.session_config(training=False))
        with self.graph.as_default():
            train.restore_checkpoint(self.sess, saver, variables, checkpoint)
        self.multiple = generator_multiple(cfg)

    def fetches(self, key):
        """{'translation', 'reconstruction'?} output names for input ``key``."""
        other = OTHER[key]
        names = {'translation': next(n for n in (f'fake_{other}_rgb', f'fake_{other}')
                                     if n in self.outputs)}
        if f'rec_{key}' in self.outputs:
            names['reconstruction'] = f'rec_{key}'
        return names

    def __call__(self, key, image):
        """{'translation', 'reconstruction'?}: arrays [H, W, C] of ``image`` [H, W, C]."""
        height, width = image.shape[:2]
        feed = {self.inputs[key]: pad_to(image, self.multiple)[None]}
        names = self.fetches(key)
        results = self.sess.run({k: self.outputs[n] for k, n in names.items()}, feed)
        return {k: v[0, :height, :width] for k, v in results.items()}


def score(outputs, truths):
    """(mean L1, mean PSNR in dB) of uint8 images against their ground truths, in [0, 1]."""
    l1s, psnrs = [], []
    for output, truth in zip(outputs, truths):
        diff = output.astype(np.float64) / 255.0 - truth.astype(np.float64) / 255.0
        l1s.append(np.mean(np.abs(diff)))
        mse = np.mean(diff ** 2)
        psnrs.append(10.0 * math.log10(1.0 / mse) if mse > 0 else 100.0)
    return float(np.mean(l1s)), float(np.mean(psnrs))


def sample(cfg, scfg, run_dir, checkpoint, work):
    """Translates ``work`` (see :func:`jobs`); returns the results folder."""
    import tensorflow as tf

    import visuals

    if checkpoint is None:
        checkpoint = tf.compat.v1.train.latest_checkpoint(runs.checkpoint_dir(run_dir))
        if checkpoint is None:
            raise runs.RunError(f'the checkpoint files of {run_dir} are missing')
    translate = Translator(cfg, checkpoint, training=not scfg.eval)
    out = scfg.results_dir or os.path.join(run_dir, f'test_{runs.step_of(checkpoint)}')
    print(f'Translating with {checkpoint} into {out}')
    sections, grid_rows, grid_labels, scores = [], [], [], {}
    for key, title, items in work:
        names = translate.fetches(key)
        labels = [f'real_{key}'] + list(names.values()) + [f'real_{OTHER[key]}']
        rows, pairs = [], []
        for item in items:
            image, truth = item.load()
            result = translate(key, image)
            images = [image] + [result[k] for k in names] + [truth]
            files = [f'images/{item.name}_{label}.png' if array is not None else ''
                     for label, array in zip(labels, images)]
            for file, array in zip(files, images):
                if file:
                    visuals.save_png(visuals.as_rgb(array), os.path.join(out, file))
            rows.append((item.name, files))
            if len(rows) <= GRID_ROWS:
                grid_rows.append([a for a in images if a is not None])
                grid_labels.append([lb for lb, a in zip(labels, images) if a is not None])
            if truth is not None:
                pairs.append([visuals.as_rgb(a) for a in (result['translation'], image, truth)])
        has_truth = bool(pairs)
        columns = ['input'] + list(names) + (['ground truth'] if has_truth else [])
        sections.append((title, columns, [(n, f if has_truth else f[:-1]) for n, f in rows]))
        print(f'  {title}: {len(items)} images')
        if pairs:
            outputs, inputs, truths = zip(*pairs)
            l1, psnr = score(outputs, truths)
            base_l1, base_psnr = score(inputs, truths)
            scores[f'{key}->{OTHER[key]}'] = dict(pairs=len(pairs), l1=l1, psnr=psnr,
                                                  baseline_l1=base_l1, baseline_psnr=base_psnr)
    notes = [f'{d}: L1 {s["l1"]:.4f}, PSNR {s["psnr"]:.2f} dB over {s["pairs"]} pairs '
             f'(baseline output = input: L1 {s["baseline_l1"]:.4f}, PSNR '
             f'{s["baseline_psnr"]:.2f} dB)' for d, s in scores.items()]
    if grid_rows:
        visuals.save_png(visuals.grid(grid_rows, grid_labels), os.path.join(out, 'grid.png'))
    visuals.write_html(os.path.join(out, 'index.html'), f'{run_dir} at {checkpoint}', sections,
                       notes)
    if scores:
        with open(os.path.join(out, 'scores.json'), 'w') as f:
            json.dump(scores, f, indent=2)
        print('Score against the ground truth (L1: lower is better, PSNR: higher is better; '
              'on [0, 1]):')
        for note in notes:
            print('  ' + note)
    print(f'Wrote {os.path.join(out, "index.html")} and {os.path.join(out, "grid.png")}')
    return out


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if any(arg in train.HELP_FLAGS for arg in argv[1:]):
        print(__doc__)
        print(config.define_flags(flags.FlagValues(), settings=config.SampleConfig).get_help())
        return 0
    try:
        scfg = parse(argv)
        run_dir, checkpoint = runs.locate(scfg.run, scfg.checkpoint)
        cfg = runs.load_config(run_dir)
        if not isinstance(cfg, config.ImageConfig):
            raise runs.RunError(f'{run_dir} is a {cfg.model} run: sample.py translates images')
        if scfg.data_root:
            cfg = cfg.replace(data_root=scfg.data_root)
        work = jobs(cfg, scfg)
        sample(cfg, scfg, run_dir, checkpoint, work)
        return 0
    except train.USER_ERRORS as e:
        print(f'sample.py: error: {runs.one_line(e)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
