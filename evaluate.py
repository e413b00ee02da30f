"""Scores translations: ``python evaluate.py --real DIR --fake DIR``.

Prints the FID and KID of the images of --fake against those of --real (any
two folders of images, any sizes: each image is resized to 299x299), from
the features of the FID Inception-v3 (inception.py; metrics.py defines the
numbers as TTUR and torch-fidelity do). --json prints one JSON object
instead: fid, kid_mean, kid_std, kid_subset_size, kid_subsets, n_real,
n_fake, real, fake, weights_sha256.

The weights are pytorch-fid's pt_inception-2015-12-05-6726825d.pth,
downloaded on first use into $XDG_CACHE_HOME/cyclegan-tf/ (default
~/.cache/cyclegan-tf/) and checked by sha256, or --fid_weights PATH. The
features of each folder are cached there too, under features/, keyed by a
hash of its files and of the weights: evaluating new translations against
the same real set only computes theirs.

Files that are no images, and images that cannot be read, are skipped with a
warning.

Exit status: 0 done; 2 a bad command line, folder or weights file (one line
on stderr).
"""

import json
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # see train.py

from absl import flags  # noqa: E402

import config  # noqa: E402
import datasets  # noqa: E402
import metrics  # noqa: E402

USER_ERRORS = (config.ConfigError, datasets.DatasetError)  # inception.WeightsError included
HELP_FLAGS = ('-h', '-help', '--help', '--helpshort', '--helpfull')


class EvaluateConfig(config.Settings):
    """Settings of evaluate.py (to move to config.py, beside SampleConfig)."""

    real = config.Option('', 'a folder of real images, e.g. datasets/horse2zebra/testB')
    fake = config.Option('', 'a folder of generated images to score against --real')
    json = config.Option(False, 'print one JSON object (fid, kid_mean, kid_std, n_real, '
                                'n_fake, ...) instead of a table')
    fid_weights = config.Option('', "the FID Inception weights in pytorch-fid's layout "
                                    '(default: pt_inception-2015-12-05-6726825d.pth, '
                                    'downloaded into $XDG_CACHE_HOME/cyclegan-tf/)')
    batch_size = config.Option(50, 'images per batch of the Inception network')
    cache_features = config.Option(True, "reuse and keep each folder's features in the cache "
                                         'folder, keyed by its content and the weights')


def parse(argv):
    """The EvaluateConfig of the command line ``argv`` (argv[0]: the program)."""
    flag_values = config.define_flags(flags.FlagValues(), settings=EvaluateConfig)
    config.parse_argv(flag_values, argv)
    ecfg = config.settings_from_flags(EvaluateConfig, flag_values)
    if not ecfg.real or not ecfg.fake:
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
            raise datasets.DatasetError(f'--{flag}: {folder} is not a folder')
        count = len(datasets.list_images(folder))
        if count < 2:
            raise datasets.DatasetError(f'--{flag}: {folder} has {count} image files; FID and '
                                        f'KID need at least 2')


def table(result):
    """The scores as a few lines of text."""
    return '\n'.join([
        f'{result["fake"]} ({result["n_fake"]} images) against {result["real"]} '
        f'({result["n_real"]} images):',
        f'  FID  {result["fid"]:.4f}',
        f'  KID  {result["kid_mean"]:.6f} +- {result["kid_std"]:.6f}  '
        f'({result["kid_subsets"]} subsets of {result["kid_subset_size"]})'])


def evaluate(ecfg):
    """The scores of ecfg.fake against ecfg.real (see the module docstring)."""
    import tensorflow as tf

    import inception

    tf.get_logger().setLevel('ERROR')  # deprecation notices of the tf.compat.v1 API
    with inception.FeatureExtractor(ecfg.fid_weights or None,
                                    batch_size=ecfg.batch_size) as extractor:
        result = metrics.score_folders(extractor, ecfg.real, ecfg.fake,
                                       use_cache=ecfg.cache_features)
        result['weights_sha256'] = extractor.weights_id
    return result


class _Formatter(logging.Formatter):
    """Info lines as they are, warnings prefixed with 'evaluate.py: warning: '."""

    def format(self, record):
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f'evaluate.py: {record.levelname.lower()}: {message}'
        return message


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(__doc__)
        print(config.define_flags(flags.FlagValues(), settings=EvaluateConfig).get_help())
        return 0
    handler = logging.StreamHandler(sys.stderr)  # stdout is for the scores (--json)
    handler.setFormatter(_Formatter('%(message)s'))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        ecfg = parse(argv)
        check_folders(ecfg)
        result = evaluate(ecfg)
    except USER_ERRORS as e:
        print(f'evaluate.py: error: {" ".join(str(e).split())}', file=sys.stderr)
        return 2
    print(json.dumps(result) if ecfg.json else table(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
