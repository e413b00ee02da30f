"""Translating a run's test split (or given files) into a results folder:
what sample.py does, and what evaluate.py and train.py's --eval_freq score.

::

    work = sampling.jobs(cfg, input='', direction='AtoB', num_test=0)  # no TensorFlow yet
    results = sampling.translate(translator, cfg, work, out)           # images/*.png
    sampling.write_report(results, title)                               # index.html, grid.png,
                                                                        # scores.json

Images are read by the training's input pipeline (pipeline.test_pipeline), at
their own size unless ``load_size`` asks for the official test's resize.
"""

import json
import math
import os

import numpy as np

from cyclegan_tf import registry
from cyclegan_tf.data import datasets, layouts

OTHER = {'A': 'B', 'B': 'A'}
GRID_ROWS = 8  # images per direction in grid.png
SCORES_FILE = 'scores.json'


def jobs(cfg, *, input='', direction='AtoB', num_test=0, phase='test'):
    """[(key, title, files)]: what to translate, ``files`` as
    pipeline.test_pipeline takes them (translating domain ``key``; a file of the
    other key, where there is one, is the ground truth): the split ``phase``
    of the run's dataset, or the image file or folder ``input`` of domain
    ``direction[0]``. TensorFlow-free, so a missing file fails at once."""
    def limit(paths):
        return paths[:num_test] if num_test > 0 else paths

    if input:
        if os.path.isdir(input):
            paths = layouts.list_images(input)
        elif os.path.isfile(input) and layouts.is_image_file(input):
            paths = [input]
        else:
            raise layouts.DatasetError(f'no image file or folder {input}')
        if not paths:
            raise layouts.DatasetError(f'no images in {input}')
        key = direction[0]
        if key == 'A' and registry.of(cfg).data == layouts.COLORIZATION:
            # Photos, read as in training: their L in (Lab's, not the luma of a
            # 1-channel image), the photo itself the ground truth.
            return [(key, f'{input} (colorization)', {'AB': limit(paths)})]
        return [(key, f'{input}, {key} -> {OTHER[key]}', {key: limit(paths)})]
    root = datasets.prepare(cfg, phase, layout=registry.of(cfg).data)
    layout = registry.of(cfg).data
    if layout == layouts.UNALIGNED:
        return [(key, f'{phase}{folder} ({key} -> {OTHER[key]})',
                 {k: limit(paths) for k, paths in files.items()})
                for key, folder, files in _unaligned_split(cfg, root, phase)]
    paths = layouts.list_images(os.path.join(root, phase))
    if not paths and layout == layouts.COLORIZATION:  # the domains of an unaligned set
        paths = [p for d in 'AB' for p in layouts.list_images(os.path.join(root, phase + d))]
    title = f'{phase} ' + ('(A -> B)' if layout == layouts.ALIGNED else '(colorization)')
    return [('A', title, {'AB': limit(paths)})]


def _unaligned_split(cfg, root, phase):
    """(key, folder name, files) of <phase>A and <phase>B; after --direction
    BtoA the model's A is <phase>B. Where every image of a folder has a
    ground truth (the file of the same name in the other domain,
    layouts.ground_truth_pairs) the files pair them up."""
    folders = {'A': 'A', 'B': 'B'} if cfg.direction == 'AtoB' else {'A': 'B', 'B': 'A'}
    pairs = layouts.ground_truth_pairs(root, phase)
    truth = {**{a: b for a, b in pairs}, **{b: a for a, b in pairs}}
    result = []
    for key in 'AB':
        paths = layouts.list_images(os.path.join(root, phase + folders[key]))
        files = {key: paths}
        if paths and all(p in truth for p in paths):
            files[OTHER[key]] = [truth[p] for p in paths]
        result.append((key, folders[key], files))
    return result


def real_folder(cfg, key):
    """The folder of real images of the domain that ``key`` translates into
    (its test split), for FID: CycleGAN's A -> B is scored against testB
    (after --direction). None for paired models: their targets are the real
    images."""
    if registry.of(cfg).data != layouts.UNALIGNED:
        return None
    target = OTHER[key] if cfg.direction == 'AtoB' else key
    return os.path.join(datasets.prepare(cfg, 'test', layout=layouts.UNALIGNED), 'test' + target)


def examples(cfg, files, *, load_size=0):
    """(name, input, truth or None) for each readable file of ``files``, in
    order, read by the training's pipeline (pipeline.test_pipeline): arrays
    [H, W, C] in [-1, 1]; colorization's truth is the RGB photo."""
    import tensorflow as tf

    from cyclegan_tf.data import pipeline

    key = 'A' if 'AB' in files else next(iter(files))
    with tf.Graph().as_default() as graph:
        reader = pipeline.test_pipeline(cfg, files, layout=registry.of(cfg).data,
                                        transform=pipeline.test_transform(load_size))
    graph.finalize()
    with tf.compat.v1.Session(graph=graph) as sess:
        while True:
            try:
                batch = sess.run(reader.next_batch)
            except tf.errors.OutOfRangeError:
                return
            name = os.path.splitext(os.path.basename(os.fsdecode(batch[key + '_paths'][0])))[0]
            image = batch[key][0]
            truth = batch[OTHER[key]][0] if OTHER[key] in batch else None
            if cfg.model == 'colorization' and truth is not None:
                truth = pipeline.colorization_to_rgb(image, truth)
            yield name, image, truth


class Results:
    """What :func:`translate` wrote into ``out``: per direction, its title,
    columns, rows of image paths and the 8-bit translations (and ground
    truths) for scoring; the sample grid; the scores so far."""

    def __init__(self, out, checkpoint):
        self.out, self.checkpoint = out, checkpoint
        self.sections, self.grid_rows, self.grid_labels = [], [], []
        self.directions = {}  # 'A->B' -> {'translations': [...], 'inputs', 'truths', 'key'}
        self.scores = {}  # 'A->B' -> {name: value}

    def notes(self):
        """One line per direction of its scores."""
        lines = []
        for direction, s in self.scores.items():
            parts = []
            if 'l1' in s:
                parts.append(f'L1 {s["l1"]:.4f}, PSNR {s["psnr"]:.2f} dB'
                             + (f', SSIM {s["ssim"]:.4f}' if 'ssim' in s else '')
                             + f' over {s["pairs"]} pairs (baseline output = input: L1 '
                             f'{s["baseline_l1"]:.4f}, PSNR {s["baseline_psnr"]:.2f} dB)')
            if 'fid' in s:
                parts.append(f'FID {s["fid"]:.2f}, KID {s["kid_mean"]:.4f} +- '
                             f'{s["kid_std"]:.4f} ({s["n_fake"]} translations against '
                             f'{s["n_real"]} real images)')
            lines.append(f'{direction}: ' + '; '.join(parts))
        return lines


def translate(translator, cfg, work, out, *, load_size=0, aspect_ratio=1.0, write=True):
    """Translates ``work`` (see :func:`jobs`) with ``translator`` (an
    inference.Translator); with ``write``, writes images/<name>_<label>.png
    into ``out`` (their width times ``aspect_ratio``, as the official
    test). ``load_size``: see :func:`examples`. Returns the Results, with L1
    and PSNR against the ground truth where there is one (on the 8-bit
    images, scaled to [0, 1])."""
    from cyclegan_tf.evaluation import visuals

    results = Results(out, translator.checkpoint)
    for key, title, files in work:
        names = translator.fetches(key)
        labels = [f'real_{key}'] + list(names.values()) + [f'real_{OTHER[key]}']
        rows, record = [], {'key': key, 'translations': [], 'inputs': [], 'truths': []}
        for name, image, truth in examples(cfg, files, load_size=load_size):
            result = translator(key, image)
            images = [image] + [result[k] for k in names] + [truth]
            paths = [f'images/{name}_{label}.png' if array is not None else ''
                     for label, array in zip(labels, images)]
            if write:
                for path, array in zip(paths, images):
                    if path:
                        visuals.save_png(_stretch(visuals.as_rgb(array), aspect_ratio),
                                         os.path.join(out, path))
            rows.append((name, paths))
            if len(rows) <= GRID_ROWS:
                results.grid_rows.append([a for a in images if a is not None])
                results.grid_labels.append([lb for lb, a in zip(labels, images) if a is not None])
            record['translations'].append(visuals.as_rgb(result['translation']))
            record['inputs'].append(visuals.as_rgb(image))
            if truth is not None:
                record['truths'].append(visuals.as_rgb(truth))
        has_truth = bool(record['truths'])
        columns = ['input'] + list(names) + (['ground truth'] if has_truth else [])
        results.sections.append((title, columns, [(n, p if has_truth else p[:-1])
                                                  for n, p in rows]))
        direction = f'{key}->{OTHER[key]}'
        results.directions[direction] = record
        if has_truth:
            l1, psnr = score(record['translations'], record['truths'])
            base_l1, base_psnr = score(record['inputs'], record['truths'])
            results.scores[direction] = dict(pairs=len(record['truths']), l1=l1, psnr=psnr,
                                             baseline_l1=base_l1, baseline_psnr=base_psnr)
    return results


def _stretch(image, aspect_ratio):
    """uint8 [H, W, 3] resized bicubically as the official save_images:
    its width times ``aspect_ratio`` (> 1), or its height divided by it (< 1)."""
    if aspect_ratio == 1.0:
        return image
    from PIL import Image

    height, width = image.shape[:2]
    size = ((int(width * aspect_ratio), height) if aspect_ratio > 1.0
            else (width, int(height / aspect_ratio)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def score(outputs, truths):
    """(mean L1, mean PSNR in dB) of uint8 images against their ground truths, in [0, 1]."""
    l1s, psnrs = [], []
    for output, truth in zip(outputs, truths):
        diff = output.astype(np.float64) / 255.0 - truth.astype(np.float64) / 255.0
        l1s.append(np.mean(np.abs(diff)))
        mse = np.mean(diff ** 2)
        psnrs.append(10.0 * math.log10(1.0 / mse) if mse > 0 else 100.0)
    return float(np.mean(l1s)), float(np.mean(psnrs))


def add_quality_scores(results, cfg, extractor):
    """Adds FID and KID (metrics.py) to each direction of ``results``: the
    translations against all the real test images of the target domain
    (their features cached, see metrics.folder_features; paired models:
    against their ground truths), and SSIM where there are pairs. Returns
    results.scores."""
    from cyclegan_tf.evaluation import metrics

    for direction, record in results.directions.items():
        if len(record['translations']) < 2:
            continue  # FID needs two images at least
        folder = real_folder(cfg, record['key'])
        if folder:
            real = metrics.folder_features(extractor, folder)[0]
        elif len(record['truths']) >= 2:
            real = extractor.features(record['truths'], desc=f'real {direction[-1]}')
        else:
            continue
        fake = extractor.features(record['translations'], desc=f'fake {direction[-1]}')
        entry = results.scores.setdefault(direction, {})
        entry.update(metrics.scores(real, fake))
        if record['truths'] and not folder:
            entry['ssim'] = float(np.mean([
                metrics.ssim(t.astype(np.float64) / 255.0, o.astype(np.float64) / 255.0)
                for t, o in zip(record['truths'], record['translations'])]))
    return results.scores


def write_report(results, title, *, width=256):
    """index.html (with the scores; images ``width`` pixels wide), grid.png
    and scores.json in results.out. Scores already in scores.json that this
    run did not compute (an earlier evaluate.py's FID) are kept and shown."""
    from cyclegan_tf.evaluation import visuals

    path = os.path.join(results.out, SCORES_FILE)
    earlier = read_scores(path) if os.path.exists(path) else {}
    for direction, entry in earlier.items():
        if isinstance(entry, dict):
            results.scores[direction] = {**entry, **results.scores.get(direction, {})}
    if results.grid_rows:
        visuals.save_png(visuals.grid(results.grid_rows, results.grid_labels),
                         os.path.join(results.out, 'grid.png'))
    visuals.write_html(os.path.join(results.out, 'index.html'), title, results.sections,
                       results.notes(), width=width)
    if results.scores:
        visuals.write_text(path, json.dumps(results.scores, indent=2, sort_keys=True) + '\n')


def read_scores(path):
    """The scores of a scores.json file ({direction: {name: value}}), {} if it cannot be read."""
    try:
        with open(path) as f:
            scores = json.load(f)
        return scores if isinstance(scores, dict) else {}
    except (OSError, ValueError):
        return {}
