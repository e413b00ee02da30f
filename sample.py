"""Samples from a trained run: ``python sample.py --run runs/<name>``.

Rebuilds the model from the run's config.json (no architecture flags to
repeat) and restores its latest checkpoint, or --checkpoint.

Image models translate the test split of the run's dataset in every
direction the model has, or --input FILE_OR_DIR with --direction, and write
to <run>/test_<step>/ (or --results_dir): images/<name>_real_A.png,
_fake_B.png, _rec_A.png, ..., index.html (input | translation |
reconstruction | ground truth) and grid.png. Images are read by the
training's input pipeline (data.test_pipeline), at their own size; the
networks see them reflected to their multiple and cropped back.

Where the test split has a ground truth (the built-in shapes2stripes pairs
testA/NNNN.png with testB/NNNN.png; a pix2pix pair file holds its target) it
prints the mean L1 distance and PSNR of the translations to it, next to the
baseline output = input. Both are computed on the 8-bit images written,
scaled to [0, 1].

The toy GAN draws --num_test points (default 1000) and writes them
(samples.npy) with the figure of real and generated points over its
discriminator's decision surface (figure.png), and prints their mean and
covariance next to the target's.

Exit status: 0 done; 2 a bad command line or run (one line on stderr).
"""

import io
import json
import math
import os
import sys

import runtime

runtime.quiet_tensorflow()

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402

import config  # noqa: E402
import datasets  # noqa: E402
import registry  # noqa: E402
import runs  # noqa: E402

OTHER = {'A': 'B', 'B': 'A'}
GRID_ROWS = 8  # images per direction in grid.png


def parse(argv):
    """The SampleConfig of the command line ``argv`` (argv[0]: the program)."""
    flag_values = config.define_flags(flags.FlagValues(), settings=config.SampleConfig)
    config.parse_argv(flag_values, argv)
    return config.settings_from_flags(config.SampleConfig, flag_values)


def jobs(cfg, scfg):
    """[(key, title, files)]: what to translate, ``files`` as
    data.test_pipeline takes them (translating domain ``key``; a file of
    the other key, where there is one, is the ground truth). TensorFlow-free,
    so that a missing file is reported before TensorFlow is imported."""
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
        return [(key, f'{scfg.input}, {key} -> {OTHER[key]}', {key: _limit(paths, scfg)})]
    root = datasets.prepare(cfg, split='test')
    layout = datasets.layout_of(cfg)
    if layout == datasets.UNALIGNED:
        return [(key, f'test{folder} ({key} -> {OTHER[key]})', _limit_files(files, scfg))
                for key, folder, files in _unaligned_test(cfg, root)]
    folder = os.path.join(root, 'test')
    paths = datasets.list_images(folder)
    if not paths and layout == datasets.COLORIZATION:  # the domains of an unaligned set
        paths = [p for d in 'AB' for p in datasets.list_images(os.path.join(root, 'test' + d))]
    title = 'test (A -> B)' if layout == datasets.ALIGNED else 'test (colorization)'
    return [('A', title, {'AB': _limit(paths, scfg)})]


def _limit(paths, scfg):
    return paths[:scfg.num_test] if scfg.num_test > 0 else paths


def _limit_files(files, scfg):
    return {key: _limit(paths, scfg) for key, paths in files.items()}


def _unaligned_test(cfg, root):
    """(key, folder name, files) of testA and testB; after --direction BtoA
    the model's A is testB. Where every image of a folder has a ground truth
    (the file of the same name in the other domain, datasets.ground_truth_pairs)
    the files pair them up."""
    folders = {'A': 'A', 'B': 'B'} if cfg.direction == 'AtoB' else {'A': 'B', 'B': 'A'}
    pairs = datasets.ground_truth_pairs(root, 'test')
    truth = {**{a: b for a, b in pairs}, **{b: a for a, b in pairs}}
    result = []
    for key in 'AB':
        paths = datasets.list_images(os.path.join(root, 'test' + folders[key]))
        files = {key: paths}
        if paths and all(p in truth for p in paths):
            files[OTHER[key]] = [truth[p] for p in paths]
        result.append((key, folders[key], files))
    return result


def score(outputs, truths):
    """(mean L1, mean PSNR in dB) of uint8 images against their ground truths, in [0, 1]."""
    l1s, psnrs = [], []
    for output, truth in zip(outputs, truths):
        diff = output.astype(np.float64) / 255.0 - truth.astype(np.float64) / 255.0
        l1s.append(np.mean(np.abs(diff)))
        mse = np.mean(diff ** 2)
        psnrs.append(10.0 * math.log10(1.0 / mse) if mse > 0 else 100.0)
    return float(np.mean(l1s)), float(np.mean(psnrs))


def examples(cfg, files):
    """(name, input, truth or None) for each readable file of ``files``, in
    order, read by the training's pipeline (data.test_pipeline): arrays
    [H, W, C] in [-1, 1]; colorization's truth is the RGB photo."""
    import tensorflow as tf

    import data

    key = 'A' if 'AB' in files else next(iter(files))
    with tf.Graph().as_default() as graph:
        pipeline = data.test_pipeline(cfg, files)
    graph.finalize()
    with tf.compat.v1.Session(graph=graph) as sess:
        while True:
            try:
                batch = sess.run(pipeline.next_batch)
            except tf.errors.OutOfRangeError:
                return
            name = os.path.splitext(os.path.basename(os.fsdecode(batch[key + '_paths'][0])))[0]
            image = batch[key][0]
            truth = batch[OTHER[key]][0] if OTHER[key] in batch else None
            if cfg.model == 'colorization' and truth is not None:
                truth = data.colorization_to_rgb(image, truth)
            yield name, image, truth


def translate(cfg, scfg, run_dir, checkpoint, work):
    """Translates ``work`` (see :func:`jobs`); returns the results folder."""
    import inference
    import visuals

    translator = inference.Translator(cfg, checkpoint, training=not scfg.eval)
    out = scfg.results_dir or os.path.join(run_dir, f'test_{translator.step}')
    print(f'Translating with {checkpoint} into {out}')
    sections, grid_rows, grid_labels, scores = [], [], [], {}
    for key, title, files in work:
        names = translator.fetches(key)
        labels = [f'real_{key}'] + list(names.values()) + [f'real_{OTHER[key]}']
        rows, pairs = [], []
        for name, image, truth in examples(cfg, files):
            result = translator(key, image)
            images = [image] + [result[k] for k in names] + [truth]
            paths = [f'images/{name}_{label}.png' if array is not None else ''
                     for label, array in zip(labels, images)]
            for path, array in zip(paths, images):
                if path:
                    visuals.save_png(visuals.as_rgb(array), os.path.join(out, path))
            rows.append((name, paths))
            if len(rows) <= GRID_ROWS:
                grid_rows.append([a for a in images if a is not None])
                grid_labels.append([lb for lb, a in zip(labels, images) if a is not None])
            if truth is not None:
                pairs.append([visuals.as_rgb(a) for a in (result['translation'], image, truth)])
        has_truth = bool(pairs)
        columns = ['input'] + list(names) + (['ground truth'] if has_truth else [])
        sections.append((title, columns, [(n, p if has_truth else p[:-1]) for n, p in rows]))
        print(f'  {title}: {len(rows)} images')
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


def draw_points(cfg, scfg, run_dir, checkpoint):
    """The toy GAN: --num_test generated points (default 1000) and the figure."""
    import model as models
    import visuals

    tf = runtime.graph_mode()
    tf1 = tf.compat.v1
    model_class = registry.of(cfg).model_class
    with tf.Graph().as_default() as graph:
        inputs, outputs = model_class.build_inference(cfg)
        variables = tf1.global_variables()
        saver = tf1.train.Saver(variables)
    graph.finalize()
    out = scfg.results_dir or os.path.join(run_dir, f'test_{runs.step_of(checkpoint)}')
    num = scfg.num_test or 1000
    with tf1.Session(graph=graph, config=runtime.session_config(training=False)) as sess:
        runtime.restore_checkpoint(sess, saver, variables, checkpoint)
        points = models.toy_samples(sess, cfg, inputs, outputs, num=num, seed=cfg.seed)
        png = models.toy_figure(sess, cfg, inputs, outputs, num=num, seed=cfg.seed,
                                title=f'{os.path.basename(run_dir)} at step '
                                      f'{runs.step_of(checkpoint)}')
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, 'samples.npy'), points)
    with Image.open(io.BytesIO(png)) as image:
        visuals.save_png(np.asarray(image.convert('RGB')), os.path.join(out, 'figure.png'))
    target = models.ToyTarget.from_config(cfg)
    print(f'Drew {num} points with {checkpoint} into {out}')
    print(f'  mean {np.round(points.mean(0), 3).tolist()} (target '
          f'{np.round(target.mean, 3).tolist()})')
    print(f'  covariance {np.round(np.cov(points, rowvar=False), 3).tolist()} (target '
          f'{np.round(target.cov, 3).tolist()})')
    print(f'Wrote {os.path.join(out, "samples.npy")} and {os.path.join(out, "figure.png")}')
    return out


def run(argv):
    if runtime.wants_help(argv):
        print(__doc__)
        print(config.help_text(settings=config.SampleConfig))
        return runtime.EXIT_OK
    scfg = parse(argv)
    run_dir, checkpoint = runs.locate(scfg.run, scfg.checkpoint)
    cfg = runs.load_config(run_dir)
    problem = runs.writable_folder_problem(scfg.results_dir or run_dir)
    if problem:
        raise runs.RunError(f'cannot write the results: {problem}'
                            + ('' if scfg.results_dir else ' (give --results_dir)'))
    if not registry.of(cfg).images:
        draw_points(cfg, scfg, run_dir, checkpoint or _latest(run_dir))
        return runtime.EXIT_OK
    if scfg.data_root:
        cfg = cfg.replace(data_root=scfg.data_root)
    work = jobs(cfg, scfg)  # before TensorFlow loads: a missing file fails at once
    translate(cfg, scfg, run_dir, checkpoint or _latest(run_dir), work)
    return runtime.EXIT_OK


def _latest(run_dir):
    import inference

    return inference.latest_checkpoint(run_dir)


def main(argv=None):
    return runtime.run_command('sample.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
