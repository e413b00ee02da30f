"""Samples from a trained run: ``python sample.py --run runs/<name>``.

Rebuilds the model from the run's config.json (no architecture flags to
repeat) and restores its latest checkpoint, or --checkpoint.

Image models translate the test split of the run's dataset in every
direction the model has, or --input FILE_OR_DIR with --direction, and write
to <run>/test_<step>/ (or --results_dir): images/<name>_real_A.png,
_fake_B.png, _rec_A.png, ..., index.html (input | translation |
reconstruction | ground truth) and grid.png. Images are read by the
training's input pipeline (data.test_pipeline), at their own size; the
networks see them reflected to their multiple and cropped back. An image
larger than --tile_size is translated tile by tile, with the normalization
statistics of the whole image (--norm_stats_size; evaluation/tiling.py).

A folder of any size streams (evaluation/streaming.py): decoding,
translating and writing overlap, memory stays flat, a progress bar shows
images/s and the ETA on a terminal, unreadable files are skipped with a
warning each, and a rerun into the same folder keeps the images written
completely by the same checkpoint and settings from the same files.

A video (--input clip.mp4, .mov, .avi, .mkv, .webm, .gif) is translated
frame by frame into <name>_fake_B.<ext> beside grid.png, with its frame
size, timing and audio (evaluation/video.py; PyAV: pip install -r
requirements-video.txt), every frame normalized with the statistics of the
first (--video_norm_stats first; each: a running average; frame: its own).

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
import os
import sys

import numpy as np
from PIL import Image

from cyclegan_tf import config, registry
from cyclegan_tf.evaluation import sampling, streaming, video
from cyclegan_tf.running import commands, runs, session


def parse(argv):
    """The SampleConfig of the command line ``argv`` (argv[0]: the program)."""
    return config.parse_settings(config.SampleConfig, argv)


def _translator(cfg, scfg, run_dir, checkpoint, *, given_statistics=False):
    """(the inference.Translator of ``checkpoint``, the results folder)."""
    from cyclegan_tf import inference

    translator = inference.Translator(cfg, checkpoint, training=not scfg.eval,
                                      networks=runs.trained_networks(run_dir, checkpoint),
                                      tile_size=scfg.tile_size,
                                      norm_stats_size=scfg.norm_stats_size,
                                      given_statistics=given_statistics)
    out = scfg.results_dir or os.path.join(run_dir, f'test_{translator.step}')
    print(f'Translating with {checkpoint} into {out}')
    return translator, out


def translate(cfg, scfg, run_dir, checkpoint, work):
    """Translates ``work`` (sampling.jobs) into the results folder; returns it."""
    translator, out = _translator(cfg, scfg, run_dir, checkpoint)
    if not scfg.input:  # the test split: the directions the run can translate
        work = [job for job in work if job[0] in translator.keys]
    settings = dict(checkpoint=streaming.source_id(checkpoint + '.index'),
                    training=not scfg.eval, load_size=scfg.load_size,
                    aspect_ratio=scfg.aspect_ratio)
    results = sampling.translate(translator, cfg, work, out, load_size=scfg.load_size,
                                 aspect_ratio=scfg.aspect_ratio, keep=False, resume=settings,
                                 progress=None)
    for title, _, rows in results.sections:
        skipped = results.resumed.get(title)
        print(f'  {title}: {len(rows)} images'
              + (f' ({skipped} of them written before: kept)' if skipped else ''))
    sampling.write_report(results, f'{run_dir} at {checkpoint}', width=scfg.display_winsize)
    if results.scores:
        print('Scores (L1: lower is better, PSNR: higher is better, on [0, 1]; FID and KID '
              'from evaluate.py: lower is better):')
        for note in results.notes():
            print('  ' + note)
    print(f'Wrote {os.path.join(out, "index.html")} and {os.path.join(out, "grid.png")}')
    return out


def translate_video(cfg, scfg, run_dir, checkpoint):
    """Translates the video --input frame by frame (evaluation/video.py)."""
    translator, out = _translator(cfg, scfg, run_dir, checkpoint,
                                  given_statistics=scfg.video_norm_stats != 'frame')
    results, target = video.translate_video(translator, scfg.direction[0], scfg.input, out,
                                            norm_stats=scfg.video_norm_stats)
    sampling.write_report(results, f'{run_dir} at {checkpoint}', width=scfg.display_winsize)
    print(f'  {results.sections[0][0]}')
    print(f'Wrote {target}, {os.path.join(out, "index.html")} and '
          f'{os.path.join(out, "grid.png")}')
    return out


def draw_points(cfg, scfg, run_dir, checkpoint):
    """The toy GAN: --num_test generated points (default 1000) and the figure."""
    from cyclegan_tf import inference
    from cyclegan_tf.evaluation import visuals
    from cyclegan_tf.models import toy_gan

    out = scfg.results_dir or os.path.join(run_dir, f'test_{runs.step_of(checkpoint)}')
    num = scfg.num_test or 1000
    with inference.PointSampler(cfg, checkpoint) as sampler:
        points = sampler.points(num=num, seed=cfg.seed)
        png = sampler.figure(num=num, seed=cfg.seed, title=f'{os.path.basename(run_dir)} at '
                                                           f'step {sampler.step}')
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, 'samples.npy'), points)
    with Image.open(io.BytesIO(png)) as image:
        visuals.save_png(np.asarray(image.convert('RGB')), os.path.join(out, 'figure.png'))
    target = toy_gan.ToyTarget.from_config(cfg)
    print(f'Drew {num} points with {checkpoint} into {out}')
    print(f'  mean {np.round(points.mean(0), 3).tolist()} (target '
          f'{np.round(target.mean, 3).tolist()})')
    print(f'  covariance {np.round(np.cov(points, rowvar=False), 3).tolist()} (target '
          f'{np.round(target.cov, 3).tolist()})')
    print(f'Wrote {os.path.join(out, "samples.npy")} and {os.path.join(out, "figure.png")}')
    return out


def run(argv):
    if commands.wants_help(argv):
        return commands.print_help(__doc__, config.SampleConfig)
    scfg = parse(argv)
    run = scfg.run or (os.path.join(scfg.runs_dir, scfg.name) if scfg.name else '')
    run_dir, checkpoint = runs.locate(run, scfg.checkpoint, scfg.runs_dir, best=scfg.best,
                                      epoch=scfg.epoch, load_iter=scfg.load_iter)
    cfg = runs.load_config(run_dir)
    problem = runs.writable_folder_problem(scfg.results_dir or run_dir)
    if problem:
        raise runs.RunError(f'cannot write the results: {problem}'
                            + ('' if scfg.results_dir else ' (give --results_dir)'))
    if not registry.of(cfg).images:
        draw_points(cfg, scfg, run_dir, checkpoint or _latest(run_dir))
        return commands.EXIT_OK
    if scfg.data_root:
        cfg = cfg.replace(data_root=scfg.data_root)
    # Before TensorFlow loads: a missing file (or PyAV) fails at once.
    if scfg.input and video.is_video_file(scfg.input):
        video.check(scfg.input)
        translate_video(cfg, scfg, run_dir, checkpoint or _latest(run_dir))
        return commands.EXIT_OK
    work = sampling.jobs(cfg, input=scfg.input, direction=scfg.direction, num_test=scfg.num_test,
                         phase=scfg.phase, max_pixels=scfg.max_pixels)
    translate(cfg, scfg, run_dir, checkpoint or _latest(run_dir), work)
    return commands.EXIT_OK


def _latest(run_dir):
    from cyclegan_tf import inference

    return inference.latest_checkpoint(run_dir)


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    return commands.run_command('sample.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
