"""Scores translations by FID and KID: ``python evaluate.py --run runs/<name>``,
or ``python evaluate.py --real DIR --fake DIR``.

With --run it translates the run's test split as sample.py does (into
<run>/test_<step>/, or --results_dir; --checkpoint, --best, --eval,
--num_test as sample.py) and scores each direction: CycleGAN's fake_B
against the real images of testB and fake_A against testA; paired models
(pix2pix, colorization) their outputs against the targets, with L1, PSNR and
SSIM against the ground truth. It prints a table and writes scores.json next
to the translations; index.html shows the scores.

With --real and --fake it prints the FID and KID of the images of --fake
against those of --real (any two folders of images, any sizes: each image is
resized to 299x299). --json prints one JSON object instead: fid, kid_mean,
kid_std, kid_subset_size, kid_subsets, n_real, n_fake, real, fake,
weights_sha256, fid_weights_standard (with --run: the scores of each
direction). With weights other than pytorch-fid's file (another sha256) the
table says that the numbers are not comparable to published FIDs.

Features come from the FID Inception-v3 (inception.py; metrics.py defines
the numbers as TTUR and torch-fidelity do). The weights are pytorch-fid's
pt_inception-2015-12-05-6726825d.pth, downloaded on first use into
$XDG_CACHE_HOME/cyclegan-tf/ (default ~/.cache/cyclegan-tf/) and checked by
sha256, or --fid_weights PATH. The features of each folder are cached there
too, under features/, keyed by a hash of its files and of the weights:
evaluating new translations against the same real set only computes theirs.

Files that are no images, and images that cannot be read, are skipped with a
warning.

Exit status: 0 done; 2 a bad command line, run, folder or weights file (one
line on stderr).
"""

import json
import logging
import os
import sys

from cyclegan_tf import config, registry
from cyclegan_tf.data import layouts
from cyclegan_tf.evaluation import metrics, sampling
from cyclegan_tf.running import commands, runs, session


def parse(argv):
    """The EvaluateConfig of the command line ``argv`` (argv[0]: the program)."""
    ecfg = config.parse_settings(config.EvaluateConfig, argv)
    if bool(ecfg.run) == bool(ecfg.real or ecfg.fake):
        raise config.ConfigError('give a run (--run RUN) or two folders of images (--real DIR '
                                 '--fake DIR)')
    if not ecfg.run and not (ecfg.real and ecfg.fake):
        raise config.ConfigError('give two folders of images: --real DIR --fake DIR')
    if ecfg.batch_size < 1:
        raise config.ConfigError(f'--batch_size must be at least 1, got {ecfg.batch_size}')
    if ecfg.fid_weights and not os.path.isfile(ecfg.fid_weights):
        raise config.ConfigError(f'--fid_weights: no file {ecfg.fid_weights}')
    return ecfg


def check_folders(ecfg):
    """DatasetError for a missing folder or one of fewer than 2 image files,
    before TensorFlow is imported (unreadable images are found later)."""
    for flag in ('real', 'fake'):
        folder = getattr(ecfg, flag)
        if not os.path.isdir(folder):
            raise layouts.DatasetError(f'--{flag}: {folder} is not a folder')
        count = len(layouts.list_images(folder))
        if count < 2:
            raise layouts.DatasetError(f'--{flag}: {folder} has {count} image files; FID and '
                                       f'KID need at least 2')


def table(result):
    """The scores as a few lines of text."""
    note = metrics.weights_note(result)
    return '\n'.join([
        f'{result["fake"]} ({result["n_fake"]} images) against {result["real"]} '
        f'({result["n_real"]} images):',
        f'  FID  {result["fid"]:.4f}',
        f'  KID  {result["kid_mean"]:.6f} +- {result["kid_std"]:.6f}  '
        f'({result["kid_subsets"]} subsets of {result["kid_subset_size"]})']
        + ([f'  {note}'] if note else []))


def evaluate(ecfg):
    """The scores of ecfg.fake against ecfg.real (see the module docstring)."""
    from cyclegan_tf.evaluation import inception

    session.graph_mode()
    with inception.FeatureExtractor(ecfg.fid_weights or None,
                                    batch_size=ecfg.batch_size) as extractor:
        result = metrics.score_folders(extractor, ecfg.real, ecfg.fake,
                                       use_cache=ecfg.cache_features)
        result.update(extractor.weights_record)
    return result


def evaluate_run(ecfg):
    """Translates the test split of ecfg.run and scores it; returns the
    scores (direction -> name -> value) and the results folder."""
    from cyclegan_tf import inference
    from cyclegan_tf.evaluation import inception

    run_dir, checkpoint = runs.locate(ecfg.run, ecfg.checkpoint, best=ecfg.best)
    cfg = runs.load_config(run_dir)
    if not registry.of(cfg).images:
        raise runs.RunError(f'{run_dir} is a {cfg.model} run: evaluate.py scores images')
    if ecfg.data_root:
        cfg = cfg.replace(data_root=ecfg.data_root)
    work = sampling.jobs(cfg, num_test=ecfg.num_test)
    checkpoint = checkpoint or inference.latest_checkpoint(run_dir)
    translator = inference.Translator(cfg, checkpoint, training=not ecfg.eval,
                                      networks=runs.trained_networks(run_dir, checkpoint))
    work = [job for job in work if job[0] in translator.keys]
    out = ecfg.results_dir or os.path.join(run_dir, f'test_{translator.step}')
    logging.info('Translating with %s into %s', translator.checkpoint, out)
    results = sampling.translate(translator, cfg, work, out)
    with inception.FeatureExtractor(ecfg.fid_weights or cfg.fid_weights or None,
                                    batch_size=ecfg.batch_size) as extractor:
        sampling.add_quality_scores(results, cfg, extractor)
    sampling.write_report(results, f'{run_dir} at {translator.checkpoint}')
    return results, out


class _Formatter(logging.Formatter):
    """Info lines as they are, warnings prefixed with 'evaluate.py: warning: '."""

    def format(self, record):
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f'evaluate.py: {record.levelname.lower()}: {message}'
        return message


def run(argv):
    if commands.wants_help(argv):
        return commands.print_help(__doc__, config.EvaluateConfig)
    ecfg = parse(argv)
    if ecfg.run:
        results, out = evaluate_run(ecfg)
        if ecfg.json:
            print(json.dumps(results.scores))
        else:
            print('\n'.join(results.notes()))
            print(f'Wrote {os.path.join(out, sampling.SCORES_FILE)} and '
                  f'{os.path.join(out, "index.html")}')
        return commands.EXIT_OK
    check_folders(ecfg)
    result = evaluate(ecfg)
    print(json.dumps(result) if ecfg.json else table(result))
    return commands.EXIT_OK


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    handler = logging.StreamHandler(sys.stderr)  # stdout is for the scores (--json)
    handler.setFormatter(_Formatter('%(message)s'))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return commands.run_command('evaluate.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
