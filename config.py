"""Configuration: one class per model whose attributes are the defaults.

Each attribute declared with :class:`Option` is a setting with its help text
beside it. Subclasses override only what differs, with a plain value that
keeps the parent's help and choices::

    class Pix2PixConfig(ImageConfig):
        model = 'pix2pix'
        netG = 'unet_256'                                   # new default
        lambda_L1 = Option(100.0, 'weight of the L1 loss')  # new setting

A config is built from keywords only (``CycleGANConfig(crop_size=32)``), needs
no global flag parsing, rejects unknown names and wrong types, and is frozen
once built. Command-line flags are registered from the same classes, with the
flag type inferred from the default (bool before int), by
:func:`define_flags`. The flags of every model together, and the config of
the model a command line names, are the registry's (registry.py), which
knows the models; so is reading a saved config back (its class comes from
its 'model'). This module knows no model by name and imports no other
module of the project.
"""

import math
import os
import textwrap
import urllib.parse

from absl import flags


class ConfigError(ValueError):
    """A bad setting: unknown name, wrong type, value outside its choices."""


class Option:
    """A setting's default, help text and, optionally, its allowed values.

    Numbers may have bounds: ``min`` and ``max`` are inclusive,
    ``min_exclusive`` and ``max_exclusive`` are not (``lr`` > 0). A float is
    always finite (no nan, no inf). The range is checked with the type in
    :meth:`check`, so a config built in Python, one read from config.json and
    one from flags are held to the same rules, and is shown in the flag's help.
    """

    def __init__(self, default, help, choices=None, *, min=None, max=None,
                 min_exclusive=None, max_exclusive=None):
        if choices is not None and default not in choices:
            raise ValueError(f'default {default!r} is not one of {choices}')
        self.default = default
        self.help = help
        self.choices = tuple(choices) if choices is not None else None
        self.min, self.max = min, max
        self.min_exclusive, self.max_exclusive = min_exclusive, max_exclusive
        bounded = (min, max, min_exclusive, max_exclusive) != (None,) * 4
        if bounded and self.type not in (int, float):
            raise TypeError(f'only numbers have bounds, not {default!r}')
        if self.range_problem(default):
            raise ValueError(f'default {default!r} is not {self.range_text()}')

    def _bounds(self):
        return dict(min=self.min, max=self.max, min_exclusive=self.min_exclusive,
                    max_exclusive=self.max_exclusive)

    def with_default(self, default):
        return Option(default, self.help, self.choices, **self._bounds())

    @property
    def type(self):
        """The flag type, from the default: bool is tested before int."""
        for kind in (bool, int, float, str):
            if isinstance(self.default, kind):
                return kind
        raise TypeError(f'unsupported option type {type(self.default)}')

    def range_text(self):
        """The allowed values of a number in words, e.g. 'an integer >= 1',
        'a finite number > 0', 'a number in [0, 1)'; None for other types."""
        kind = self.type
        if kind not in (int, float):
            return None
        noun = 'an integer' if kind is int else 'a finite number'
        low = (f'[{self.min}' if self.min is not None else
               f'({self.min_exclusive}' if self.min_exclusive is not None else None)
        high = (f'{self.max}]' if self.max is not None else
                f'{self.max_exclusive})' if self.max_exclusive is not None else None)
        if low and high:
            if kind is int and self.min is not None and self.max is not None:
                return f'an integer from {self.min} to {self.max}'
            return f'a number in {low}, {high}'
        if low:
            return f'{noun} {">=" if low[0] == "[" else ">"} {low[1:]}'
        if high:
            return f'{noun} {"<=" if high[-1] == "]" else "<"} {high[:-1]}'
        return noun

    def range_problem(self, value):
        """'must be <range>' if the number ``value`` is outside the range, else None."""
        if self.type not in (int, float):
            return None
        inside = ((self.type is int or math.isfinite(value))
                  and (self.min is None or value >= self.min)
                  and (self.max is None or value <= self.max)
                  and (self.min_exclusive is None or value > self.min_exclusive)
                  and (self.max_exclusive is None or value < self.max_exclusive))
        return None if inside else f'must be {self.range_text()}'

    def help_with_range(self):
        """The help text, followed by the range of a number: what flags show."""
        text = self.range_text()
        return f'{self.help} ({text})' if text else self.help

    def check(self, name, value):
        """Returns ``value`` converted to this option's type, or raises."""
        kind = self.type
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is not bool and isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f'{name} must be of type {kind.__name__}, got {value!r}')
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f'{name} must be one of {", ".join(map(str, self.choices))}; '
                              f'got {value!r}')
        problem = self.range_problem(value)
        if problem:
            raise ConfigError(f'{name} {problem}, got {value!r}')
        if kind is str and not _is_utf8(value):  # bytes of argv that were not UTF-8
            raise ConfigError(f'{name} must be valid UTF-8 text, got {value!r}')
        return value


def _is_utf8(text):
    try:
        text.encode('utf-8')
        return True
    except UnicodeEncodeError:
        return False


def _collect_options(cls):
    """Sets ``cls._options``: the parent's settings less those named in the
    class's ``OMIT``, then this class's own Options and plain-value overrides
    of inherited ones (help kept)."""
    options = {}
    for base in cls.__bases__:
        options.update(getattr(base, '_options', {}))
    for name in vars(cls).get('OMIT', ()):  # inherited settings this class has not
        options.pop(name)
    for name, value in vars(cls).items():
        if name.startswith('_') or name.isupper() or callable(value) or isinstance(
                value, (property, classmethod, staticmethod)):
            continue  # private names, constants such as ARCHITECTURE, methods
        if isinstance(value, Option):
            options[name] = value
        elif name in options:
            options[name] = options[name].with_default(options[name].check(name, value))
        else:
            raise TypeError(f'{cls.__name__}.{name} overrides no option; '
                            f'declare it with Option(default, help)')
    cls._options = options


class Settings:
    """A frozen set of named settings: the machinery of every config class
    (keyword-only construction, checks, replace, JSON). A subclass declares
    its settings as class attributes (see :class:`Option`)."""

    _options = {}  # name -> Option, filled for each class by _collect_options

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _collect_options(cls)

    def __init__(self, **overrides):
        unknown = sorted(set(overrides) - set(self._options))
        if unknown:
            raise ConfigError(f'unknown option(s) for {type(self).__name__}: '
                              f'{", ".join(unknown)}')
        for name, option in self._options.items():
            value = option.check(name, overrides.get(name, option.default))
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError('a config is frozen: use config.replace(name=value)')

    @classmethod
    def options(cls):
        """The settings of this class, name -> Option, in declaration order."""
        return dict(cls._options)

    def replace(self, **overrides):
        return type(self)(**{**self.to_dict(), **overrides})

    def to_dict(self):
        return {name: getattr(self, name) for name in self._options}

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        changed = {k: v for k, v in self.to_dict().items() if v != self._options[k].default}
        args = ', '.join(f'{k}={v!r}' for k, v in changed.items())
        return f'{type(self).__name__}({args})'


class Config(Settings):
    """Settings shared by every model: the run, the optimizer, the loop.

    ``ARCHITECTURE`` names the options that shape the model's variables (or
    what its networks compute): a resumed run cannot change them.
    """

    ARCHITECTURE = ()

    model = Option('cycle_gan', 'which model to train (see registry.py)')
    name = Option('', 'experiment name: the run lives in <runs_dir>/<name> '
                      '(default: <dataset>_<model>)')
    runs_dir = Option('./runs', 'folder holding one sub-folder per run')
    seed = Option(0, 'random seed of the graph, the data order and the image pool',
                  min=0, max=2 ** 31 - 1)  # what every seed API here takes

    # Optimization. Defaults are the paper's: Adam(2e-4, 0.5), 100 epochs at
    # constant rate, then 100 epochs of linear decay to zero.
    batch_size = Option(1, 'input batch size', min=1)
    lr = Option(0.0002, 'initial learning rate for Adam', min_exclusive=0)
    beta1 = Option(0.5, 'momentum term of Adam', min=0, max_exclusive=1)  # 1: Adam divides by 0
    n_epochs = Option(100, 'number of epochs with the initial learning rate', min=0)
    n_epochs_decay = Option(100, 'number of epochs to linearly decay the learning rate to zero',
                            min=0)
    lr_policy = Option('linear', 'learning rate policy: linear keeps lr for n_epochs, then '
                                 'decays it to zero over n_epochs_decay; step multiplies it by '
                                 '0.1 every lr_decay_iters epochs; cosine anneals it from lr '
                                 'to zero over all n_epochs + n_epochs_decay epochs',
                       choices=('linear', 'step', 'cosine'))
    lr_decay_iters = Option(50, 'step policy: multiply by 0.1 every lr_decay_iters epochs',
                            min=1)
    gan_mode = Option('lsgan', 'GAN objective: least squares, the original cross-entropy '
                               '(on logits) or Wasserstein with gradient penalty',
                      choices=('lsgan', 'vanilla', 'wgangp'))
    lambda_gp = Option(10.0, 'weight of the gradient penalty (gan_mode wgangp)', min=0)
    max_steps = Option(0, 'stop after this many iterations (0: run all epochs)', min=0)
    epoch_count = Option(1, 'the epoch a new run starts at, for fine-tuning: its learning-rate '
                            'schedule and epoch count begin there, and it trains the epochs '
                            'left (the official --epoch_count)', min=1)
    suffix = Option('', 'appended to the run name as _<suffix>, formatted with the settings, '
                        "e.g. '{model}_{netG}_size{load_size}' (the official --suffix)")
    gpu_ids = Option('', 'the GPUs to use, e.g. 0 or 0,1,2 (-1: the CPU only; default: all, '
                         'as TensorFlow sees them)')
    verbose = Option(False, 'print each network with its variables and parameter count')

    # The loop's periodic actions, in iterations.
    print_freq = Option(100, 'frequency of log lines', min=0)
    summary_freq = Option(100, 'frequency of scalar summaries (losses, learning rate)', min=0)
    display_freq = Option(400, 'frequency of sample grids, in TensorBoard and samples/',
                          min=0)
    save_freq = Option(5000, 'frequency of checkpoints, in iterations, kept in the rotation of '
                             'keep_checkpoints (0: never; a checkpoint is always saved when '
                             'training ends or is stopped)', min=0)
    save_epoch_freq = Option(5, 'every this many epochs, a checkpoint kept for good in '
                                'checkpoints/epoch_<N>/, outside the rotation (sample.py --epoch '
                                'N; 0: never)', min=0)
    trace_freq = Option(0, 'frequency of full run traces (time and memory per op) '
                           'in TensorBoard (0: never)', min=0)
    # 0 is tf.train.Saver's max_to_keep=0: every checkpoint stays. Host states
    # are removed only with their checkpoint's index (runs.remove_stale_host_states).
    keep_checkpoints = Option(5, 'number of most recent checkpoints to keep in the rotation '
                                 '(0: keep every one)', min=0)

    def __init__(self, **overrides):
        super().__init__(**overrides)
        if self.name and not _is_folder_name(self.name):
            raise ConfigError(f"name must be one folder name inside runs_dir (no '/', not '.' "
                              f"or '..'), got {self.name!r}")
        if self.n_epochs + self.n_epochs_decay < 1:
            raise ConfigError('n_epochs + n_epochs_decay must be >= 1: there is nothing to '
                              'train')

    # Hardware: data-parallel training and the GPU's speed-ups (distribute.py).
    num_replicas = Option(1, 'replicas of the model trained in step (data parallel), each on '
                             'batch_size examples: GPUs 0..N-1, else N logical CPU devices (at '
                             'most 64); '
                             'with TF_CONFIG, the GPUs of each worker (one CPU replica each)',
                          min=1)
    amp = Option(False, 'mixed precision on a GPU: float16 where safe by TensorFlow\'s graph '
                        'rewrite (auto_mixed_precision), with dynamic loss scaling (a step '
                        'whose gradients overflow is skipped); accepted on a CPU, where it '
                        'does nothing')
    xla = Option(False, 'compile the training graph with XLA on a GPU (global_jit_level '
                        'ON_1; accepted on a CPU, where it does nothing)')
    worker_timeout = Option(600, 'with TF_CONFIG: seconds a worker waits on the others (to '
                                 'connect at the start, then in each step) before it stops '
                                 'with an error naming the missing one', min=1)

    @property
    def run_name(self):
        name = self.name or f'{os.path.basename(os.path.normpath(str(self.dataset)))}_{self.model}'
        return name + self._suffix()

    def _suffix(self):
        """'_' + suffix formatted with the settings, or ''."""
        if not self.suffix:
            return ''
        try:
            return '_' + self.suffix.format(**self.to_dict())
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f'--suffix {self.suffix!r} names no setting ({e})') from None

    @property
    def run_dir(self):
        return os.path.join(self.runs_dir, self.run_name)


class ImageConfig(Config):
    """Settings of the image-to-image models: data, preprocessing, networks."""

    ARCHITECTURE = ('netG', 'netD', 'n_layers_D', 'ngf', 'ndf', 'norm', 'input_nc', 'output_nc',
                    'no_dropout')

    dataset = Option('shapes2stripes', 'a dataset name (downloaded into data_root on first '
                                       'use), or the path of a folder in the reference layout')
    data_root = Option('./datasets', 'folder where datasets are downloaded and looked up')
    download_url = Option('', 'base URL of the dataset server (http or https), for mirrors '
                              '(default: $CYCLEGAN_DATASETS_URL, else the official server)')
    direction = Option('AtoB', 'translate A to B or B to A', choices=('AtoB', 'BtoA'))
    phase = Option('train', 'the split of the dataset to train on: train, val, ... (its '
                            'folders <phase>A/<phase>B or <phase>/)')
    input_nc = Option(3, 'number of input image channels: 3 for RGB, 1 for grayscale',
                      min=1, max=3)
    output_nc = Option(3, 'number of output image channels: 3 for RGB, 1 for grayscale',
                       min=1, max=3)  # 2: the ab of colorization

    # Preprocessing, as the official implementation: resize to load_size, then
    # a random crop_size crop and a random horizontal flip.
    preprocess = Option('resize_and_crop', 'scaling and cropping of images at load time',
                        choices=('resize_and_crop', 'crop', 'scale_width',
                                 'scale_width_and_crop', 'none'))
    load_size = Option(286, 'scale images to this size', min=1)
    # No load_size >= crop_size rule: a crop larger than the image enlarges it
    # first (data._random_crop), as it always has here.
    crop_size = Option(256, 'then crop to this size', min=1)
    no_flip = Option(False, 'flip images left-right at random, for data augmentation '
                            '(--flip; --noflip or the official --no_flip turns it off)')
    serial_batches = Option(False, 'take B in order, not at random (unaligned data)')
    max_dataset_size = Option(0, 'use at most this many images per domain (0: all)', min=0)
    num_threads = Option(4, 'threads decoding images (0: as many as tf.data finds best)',
                         min=0)

    # Networks.
    ngf = Option(64, 'number of generator filters in the last conv layer', min=1)
    ndf = Option(64, 'number of discriminator filters in the first conv layer', min=1)
    netG = Option('resnet_9blocks', 'generator architecture',
                  choices=('resnet_9blocks', 'resnet_6blocks', 'unet_256', 'unet_128'))
    netD = Option('basic', 'discriminator: basic is the 70x70 PatchGAN, n_layers uses '
                           'n_layers_D, pixel is the 1x1 PixelGAN',
                  choices=('basic', 'n_layers', 'pixel'))
    n_layers_D = Option(3, 'number of stride-2 layers of the n_layers discriminator', min=1)
    norm = Option('instance', 'normalization: instance (no affine parameters), batch or none',
                  choices=('instance', 'batch', 'none'))
    init_type = Option('normal', 'weight initialization',
                       choices=('normal', 'xavier', 'kaiming', 'orthogonal'))
    init_gain = Option(0.02, 'scaling factor of normal, xavier and orthogonal initialization',
                       min_exclusive=0)
    no_dropout = Option(False, 'dropout in the generator (--dropout; --nodropout or the '
                               'official --no_dropout turns it off)')

    # Quality during training (metrics.py, FID and KID of the test split).
    eval_freq = Option(0, 'every this many epochs, score the translations of the test split '
                          'by FID and KID (logged as eval/fid_B, eval/fid_A, ...) and keep the '
                          'checkpoint of the lowest FID sum in checkpoints/best/ (0: never)',
                       min=0)
    eval_num = Option(0, 'with eval_freq: translate at most this many test images per '
                         'direction (0: all)', min=0)
    fid_weights = Option('', "the FID Inception weights, pytorch-fid's "
                             'pt_inception-2015-12-05-6726825d.pth (default: downloaded into '
                             '$XDG_CACHE_HOME/cyclegan-tf/ on first use)')

    def __init__(self, **overrides):
        super().__init__(**overrides)
        problem = self.download_url and url_problem(self.download_url, base=True)
        if problem:
            raise ConfigError(f'download_url {problem}, got {self.download_url!r}')


class CycleGANConfig(ImageConfig):
    """CycleGAN (Zhu et al. 2017) with the paper's and the official defaults."""

    model = 'cycle_gan'
    no_dropout = True
    lambda_A = Option(10.0, 'weight of the cycle loss A -> B -> A', min=0)
    lambda_B = Option(10.0, 'weight of the cycle loss B -> A -> B', min=0)
    lambda_identity = Option(0.5, 'weight of the identity loss, relative to lambda_A and '
                                  'lambda_B (0: no identity loss)', min=0)
    pool_size = Option(50, 'size of the history of generated images shown to the '
                           'discriminators (0: no history)', min=0)


class Pix2PixConfig(ImageConfig):
    """pix2pix (Isola et al. 2017) with the official defaults. The official
    commands train facades with --direction BtoA (labels to photos)."""

    model = 'pix2pix'
    dataset = 'facades'
    netG = 'unet_256'
    norm = 'batch'
    gan_mode = 'vanilla'
    lambda_L1 = Option(100.0, 'weight of the L1 loss between output and target', min=0)


class ColorizationConfig(Pix2PixConfig):
    """pix2pix from the lightness of a photo to its colours, as the official
    colorization model: input L (input_nc 1), output ab (output_nc 2) of CIE
    Lab. Any folder of RGB images serves as data (train/ and test/, or the
    domains of an unaligned set); the built-in default works offline."""

    model = 'colorization'
    dataset = 'shapes2stripes'
    input_nc = 1
    output_nc = 2


# FastCUT's defaults (the official cut_model.modify_commandline_options): they
# apply to the settings a FastCUT config is not given.
FASTCUT_DEFAULTS = dict(lambda_NCE=10.0, nce_idt=False, flip_equivariance=True, n_epochs=150,
                        n_epochs_decay=50)


class CUTConfig(ImageConfig):
    """CUT and FastCUT (Park et al. 2020) with the official defaults and option
    names (taesungp/contrastive-unpaired-translation: options/base_options.py,
    train_options.py, models/cut_model.py). --CUT_mode FastCUT changes the
    defaults of FASTCUT_DEFAULTS, for the settings not given. The generator's and
    discriminator's norms are normG and normD (no --norm); no image pool."""

    OMIT = ('norm',)
    ARCHITECTURE = ('netG', 'netD', 'n_layers_D', 'ngf', 'ndf', 'normG', 'normD', 'input_nc',
                    'output_nc', 'no_dropout', 'no_antialias', 'no_antialias_up', 'netF',
                    'netF_nc', 'nce_layers')

    model = 'cut'
    n_epochs = 200
    n_epochs_decay = 200
    init_type = 'xavier'
    no_dropout = True
    netG = Option('resnet_9blocks', "generator architecture (CUT's anti-aliased ResNet)",
                  choices=('resnet_9blocks', 'resnet_6blocks'))
    netD = Option('basic', "discriminator: basic is CUT's anti-aliased 70x70 PatchGAN, "
                           'n_layers uses n_layers_D', choices=('basic', 'n_layers'))
    CUT_mode = Option('CUT', 'CUT, or FastCUT: its defaults lambda_NCE 10, no nce_idt, '
                             'flip_equivariance, 150 + 50 epochs (for the settings not given)',
                      choices=('CUT', 'cut', 'FastCUT', 'fastcut'))
    normG = Option('instance', 'normalization of the generator', choices=('instance', 'batch',
                                                                          'none'))
    normD = Option('instance', 'normalization of the discriminator',
                   choices=('instance', 'batch', 'none'))
    no_antialias = Option(False, 'stride-2 convs instead of anti-aliased downsampling (conv, '
                                 'then a fixed blur with stride 2)')
    no_antialias_up = Option(False, 'learned transposed convs instead of anti-aliased '
                                    'upsampling (a fixed [1 3 3 1] blur upsampling, then a conv)')
    lambda_GAN = Option(1.0, 'weight of the GAN loss: GAN(G(X))', min=0)
    lambda_NCE = Option(1.0, 'weight of the NCE loss: NCE(G(X), X) (FastCUT: 10)', min=0)
    nce_idt = Option(True, 'also the NCE loss of the identity mapping, NCE(G(Y), Y) (FastCUT: '
                           'off)')
    nce_layers = Option('0,4,8,12,16', "the generator's layers whose features the NCE loss "
                                       'compares, increasing indices of the official layer '
                                       'list (0: the padded input)')
    nce_includes_all_negatives_from_minibatch = Option(
        False, 'take the negatives of the NCE loss from every image of the minibatch, not '
               'only from the same image (single-image translation)')
    netF = Option('mlp_sample', 'the patch sampler: mlp_sample passes each sampled patch '
                                'through a 2-layer MLP per layer, sample takes it as it is',
                  choices=('mlp_sample', 'sample'))
    netF_nc = Option(256, 'output features of the MLP of netF mlp_sample', min=1)
    nce_T = Option(0.07, 'temperature of the NCE loss', min_exclusive=0)
    num_patches = Option(256, 'patches sampled per layer', min=1)
    flip_equivariance = Option(False, 'flip the training batch left-right at random before '
                                      'the generator and its features back, an extra '
                                      'regularization (FastCUT: on)')

    def __init__(self, **overrides):
        if str(overrides.get('CUT_mode', '')).lower() == 'fastcut':
            overrides = {**FASTCUT_DEFAULTS, **overrides}
        super().__init__(**overrides)
        layers = self.layers
        if layers != sorted(set(layers)):
            raise ConfigError(f'nce_layers must be increasing layer indices, got '
                              f'{self.nce_layers!r}')
        if self.lambda_GAN == 0 and self.lambda_NCE == 0:
            raise ConfigError('lambda_GAN and lambda_NCE are both 0: the generator has nothing '
                              'to learn')

    @property
    def layers(self):
        """nce_layers as a list of ints; ConfigError if it is not one."""
        try:
            layers = [int(i) for i in self.nce_layers.split(',')]
        except ValueError:
            layers = []
        if not layers or min(layers) < 0:
            raise ConfigError(f'nce_layers must be comma-separated layer indices >= 0, got '
                              f'{self.nce_layers!r}')
        return layers

    @property
    def fast(self):
        """Whether this is FastCUT."""
        return self.CUT_mode.lower() == 'fastcut'


class ToyGANConfig(Config):
    """A GAN of points in the plane (model.ToyGAN): small MLPs learn a 2-D
    Gaussian, or a ring of toy_modes Gaussians, from noise in seconds on a CPU.
    An epoch is steps_per_epoch iterations of fresh samples.

    The defaults (3000 iterations at 1e-3, the last 2500 decaying) match the
    default target's mean and covariance within a few percent for every seed
    we tried. Keep targets within a few units of the origin, as images are
    kept in [-1, 1]: far from it (a mean of (2, 3), say) the MLPs, whose
    biases start at zero, learn much worse and often collapse to a line.
    """

    ARCHITECTURE = ('noise_dim', 'hidden_units', 'hidden_layers')

    model = 'toy_gan'
    batch_size = 256
    lr = 0.001
    n_epochs = 5
    n_epochs_decay = 25
    gan_mode = 'vanilla'
    print_freq = 100
    summary_freq = 20
    display_freq = 100
    save_freq = 1000
    steps_per_epoch = Option(100, 'iterations per epoch (toy_gan draws fresh samples each step)',
                             min=1)
    noise_dim = Option(2, 'dimension of the Gaussian noise fed to the generator', min=1)
    hidden_units = Option(64, 'units per hidden layer of the MLP generator and discriminator',
                          min=1)
    hidden_layers = Option(2, 'hidden layers of the MLP generator and discriminator', min=0)
    toy_mean = Option('1,1', 'mean of the target Gaussian, "x,y" (with toy_modes: the '
                             'centre of the ring)')
    toy_cov = Option('1,0.5,0.5,1', 'covariance of the target Gaussian, row-major '
                                    '"xx,xy,yx,yy", symmetric positive definite')
    toy_modes = Option(0, 'target: a ring of this many Gaussians around toy_mean '
                          '(0: the single Gaussian of toy_mean and toy_cov)', min=0)
    toy_radius = Option(2.0, 'radius of the ring of toy_modes Gaussians', min=0)
    toy_mode_std = Option(0.1, 'standard deviation of each Gaussian of the ring',
                          min_exclusive=0)

    def __init__(self, **overrides):
        super().__init__(**overrides)
        _ = self.target_mean, self.target_cov  # parsed now: a bad string fails here

    @property
    def target_mean(self):
        """toy_mean as a tuple (x, y)."""
        return _floats('toy_mean', self.toy_mean, 2)

    @property
    def target_cov(self):
        """toy_cov as ((xx, xy), (yx, yy)); raises ConfigError unless it is
        symmetric positive definite."""
        xx, xy, yx, yy = _floats('toy_cov', self.toy_cov, 4)
        if xy != yx or xx <= 0 or xx * yy - xy * yx <= 0:
            raise ConfigError(f'toy_cov must be symmetric positive definite, got {self.toy_cov!r}')
        return (xx, xy), (yx, yy)

    @property
    def run_name(self):
        target = f'ring{self.toy_modes}' if self.toy_modes else 'gaussian'
        return (self.name or f'{target}_{self.model}') + self._suffix()


def url_problem(url, *, base=False):
    """Why ``url`` cannot be downloaded from, in a few words, or None.

    Only http and https are accepted (file:// would copy any local file
    into data_root, ftp:// hangs on most networks). A ``base`` URL, to which
    dataset paths are appended, has no ?query or #fragment: they would
    swallow the path.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f'is not a valid URL ({e})'
    if parts.scheme.lower() not in ('http', 'https') or not parts.hostname:
        return 'must be an http:// or https:// URL'
    if base and ('?' in url or '#' in url):
        return 'must be a base URL, without ?query or #fragment'
    return None


def _is_folder_name(text):
    """Whether ``text`` names one entry of a folder: no separator, not '.' or '..'."""
    separators = {'/', os.sep, os.altsep, '\0'} - {None}
    return text not in ('', '.', '..') and not any(c in text for c in separators)


def _floats(name, text, count):
    """``count`` floats from a comma-separated string, or ConfigError."""
    try:
        values = tuple(float(v) for v in text.split(','))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f'{name} must be {count} comma-separated numbers, got {text!r}')
    if not all(map(math.isfinite, values)):
        raise ConfigError(f'{name} must be {count} finite numbers, got {text!r}')
    return values


# How --help groups the options, in this order. Every option of every model
# is in one group (a test checks).
GROUPS = {
    'run': ('model', 'name', 'runs_dir', 'suffix', 'seed', 'max_steps', 'epoch_count',
            'gpu_ids'),
    'data': ('dataset', 'data_root', 'download_url', 'phase', 'direction', 'input_nc',
             'output_nc', 'preprocess', 'load_size', 'crop_size', 'no_flip', 'serial_batches',
             'max_dataset_size', 'num_threads', 'toy_mean', 'toy_cov', 'toy_modes',
             'toy_radius', 'toy_mode_std', 'steps_per_epoch'),
    'network': ('netG', 'netD', 'n_layers_D', 'ngf', 'ndf', 'norm', 'normG', 'normD',
                'init_type', 'init_gain', 'no_dropout', 'no_antialias', 'no_antialias_up',
                'netF', 'netF_nc', 'noise_dim', 'hidden_units', 'hidden_layers'),
    'objective': ('CUT_mode', 'gan_mode', 'lambda_A', 'lambda_B', 'lambda_identity',
                  'lambda_L1', 'lambda_GAN', 'lambda_NCE', 'nce_idt', 'nce_layers', 'nce_T',
                  'num_patches', 'nce_includes_all_negatives_from_minibatch',
                  'flip_equivariance', 'lambda_gp', 'pool_size'),
    'optimization': ('batch_size', 'lr', 'beta1', 'n_epochs', 'n_epochs_decay', 'lr_policy',
                     'lr_decay_iters'),
    'logging': ('print_freq', 'summary_freq', 'display_freq', 'save_freq', 'save_epoch_freq',
                'keep_checkpoints', 'trace_freq', 'verbose'),
    'evaluation': ('eval_freq', 'eval_num', 'fid_weights'),
    'hardware': ('num_replicas', 'amp', 'xla', 'worker_timeout'),
}
FLAG_TYPES = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
              float: flags.DEFINE_float, str: flags.DEFINE_string}
NEGATIVE_PREFIX = 'no_'  # no_flip, no_dropout: also given as --flip / --noflip

# The official implementation's options (pytorch-CycleGAN-and-pix2pix,
# options/*.py) under their own names, where this project spells them
# otherwise: the flag sets the option it names here.
ALIASES = {'dataroot': 'dataset', 'checkpoints_dir': 'runs_dir',
           'save_latest_freq': 'save_freq'}


def _positive_twin(name):
    """'flip' for the option 'no_flip': a flag that reads naturally when the
    option defaults to true (--dropout rather than --nono_dropout)."""
    return name[len(NEGATIVE_PREFIX):] if name.startswith(NEGATIVE_PREFIX) else None


def define_flags(flag_values, options, module_name='config'):
    """Registers one flag per option of ``options`` (name -> Option) in
    ``flag_values``, and the official ALIASES of those options. Idempotent.
    Each boolean ``no_<x>`` also gets the flag ``<x>``, its opposite."""
    for name, option in options.items():
        if name in flag_values:
            continue
        kwargs = dict(flag_values=flag_values, module_name=module_name)
        if option.choices is not None:
            flags.DEFINE_enum(name, option.default, list(option.choices), option.help, **kwargs)
        else:
            FLAG_TYPES[option.type](name, option.default, option.help_with_range(), **kwargs)
            if option.range_text():
                flags.register_validator(name, _range_validator(option), flag_values=flag_values)
        twin = _positive_twin(name) if option.type is bool else None
        if twin and twin not in flag_values:
            flags.DEFINE_bool(twin, None, f'the opposite of --{name}', **kwargs)
    for alias, name in ALIASES.items():
        if name in options and alias not in flag_values:
            FLAG_TYPES[options[name].type](alias, None, f'the official name of --{name}',
                                           flag_values=flag_values, module_name=module_name)
    return flag_values


def _range_validator(option):
    """A flag validator of ``option``'s range; absl reports a failure as
    'flag --<name>=<value>: must be ...' when the flags are parsed."""
    def check(value):
        problem = option.range_problem(value)
        if problem:
            raise flags.ValidationError(problem)
        return True
    return check


def given_options(flag_values, options):
    """name -> value of the ``options`` given on the command line, a
    positive twin (--flip) given as its option (no_flip=False), an official
    alias (--dataroot) as the option it names (dataset)."""
    given = {name: flag_values[name].value for name in options if flag_values[name].present}
    for alias, name in ALIASES.items():
        if name in options and alias in flag_values and flag_values[alias].present:
            if name in given and given[name] != flag_values[alias].value:
                raise ConfigError(f'--{alias} and --{name} contradict each other')
            given[name] = flag_values[alias].value
    for name in options:
        twin = _positive_twin(name)
        if twin and twin in flag_values and flag_values[twin].present:
            if name in given and given[name] == flag_values[twin].value:
                raise ConfigError(f'--{name} and --{twin} contradict each other')
            given[name] = not flag_values[twin].value
    return given


def parse_argv(flag_values, argv):
    """Parses ``argv`` (argv[0]: the program) into ``flag_values``; any
    problem, a stray positional argument included, is one ConfigError."""
    try:
        rest = flag_values(list(argv))
    except flags.Error as e:
        raise ConfigError(str(e)) from None
    if len(rest) > 1:
        raise ConfigError(f'unexpected argument {rest[1]!r}: flags are --name=value')
    return flag_values


def parse_settings(settings, argv):
    """An instance of the Settings class ``settings`` (a tool's, such as
    SampleConfig) from the command line ``argv`` (argv[0]: the program)."""
    flag_values = parse_argv(define_flags(flags.FlagValues(), settings.options()), argv)
    return settings_from_flags(settings, flag_values)


def settings_from_flags(settings, flag_values):
    """An instance of the settings class ``settings`` from parsed flags."""
    values = {name: flag_values[name].value for name in settings.options()}
    return settings(**{**values, **given_options(flag_values, settings.options())})


# ---------------------------------------------------------------------------
# Help: the options of one model, or of all, grouped by topic.

def _describe(name, option):
    """The lines of one option in --help: its flag, default, choices and help."""
    twin = _positive_twin(name) if option.type is bool else None
    if twin:  # no_flip is shown as --[no]flip, with its default turned round
        head = f'  --[no]{twin}: default {str(not option.default).lower()}'
    elif option.type is bool:
        head = f'  --[no]{name}: default {str(option.default).lower()}'
    else:
        head = f'  --{name}: default {option.default!r}'
    text = option.help_with_range()
    if option.choices:
        text += f' (one of {", ".join(map(str, option.choices))})'
    return [head, textwrap.fill(text, width=96, initial_indent=' ' * 6,
                                subsequent_indent=' ' * 6)]


def help_text(options, *, grouped=True):
    """--help's lines of ``options`` (name -> Option): by topic (GROUPS) when
    ``grouped``, else in their order."""
    if not grouped:
        return '\n'.join(line for name, option in options.items()
                         for line in _describe(name, option))
    lines = []
    for group, members in GROUPS.items():
        present = [name for name in members if name in options]
        if present:
            lines.append(f'{group}:')
            lines.extend(line for name in present for line in _describe(name, options[name]))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Settings of the tools. Their flags: define_flags(flag_values, Tool.options()).

# The most pixels (height x width) of one image that sample.py --input
# translates and an export serves (export.py --max_pixels; the demo's limit
# too), 2048 x 2048. The generators' activations, not the image, take the
# memory: CycleGAN's default ResNet-9 generator (ngf 64) in inference mode
# peaked at about 0.96 KB per pixel over the session's start on a CPU
# (+251 MB at 512 x 512, +1031 MB at 1024 x 1024), so this limit is about 4 GB
# per request, within a serving machine's memory, where a 12000 x 12000 PNG
# of a few hundred KB asked for over 100 GB and ended the process in
# std::bad_alloc. --max_pixels raises it.
MAX_PIXELS = 2048 * 2048
# With tiled translation (sample.py's default --tile_size) the generator's
# memory is bounded by the tile, and what grows with the image is its arrays
# (about 40 bytes a pixel for input, translation and reconstruction): sample.py
# --input takes photos up to 8192 x 8192 (2.7 GB of arrays), a 48-megapixel
# camera photo among them.
TILED_MAX_PIXELS = 8192 * 8192


class SampleConfig(Settings):
    """Settings of sample.py. The model's own settings are read from the run's
    config.json, never from flags: what was trained is what is rebuilt."""

    run = Option('', 'the run to sample from, a folder <runs_dir>/<name> (its latest checkpoint)')
    checkpoint = Option('', 'a checkpoint to sample from instead of --run, e.g. '
                            'runs/<name>/checkpoints/model.ckpt-1000')
    input = Option('', 'an image file, a folder of images or a video (.mp4 .mov .avi .mkv '
                       ".webm .gif) to translate instead of the test split of the run's dataset")
    direction = Option('AtoB', 'with --input: translate from A to B or from B to A',
                       choices=('AtoB', 'BtoA'))
    results_dir = Option('', 'folder for the images, index.html and grid.png '
                             '(default: <run>/test_<step>)')
    num_test = Option(0, 'translate at most this many images per direction (0: all)', min=0)
    data_root = Option('', "folder holding the datasets (default: the run's data_root)")
    eval = Option(False, 'run the generators as at inference (batch-norm moving averages, no '
                         'dropout); the default runs them as in training, as the official test.py')
    best = Option(False, 'sample from the best checkpoint by FID (kept by train.py --eval_freq)')
    name = Option('', 'instead of --run: the run <runs_dir>/<name>, as the official --name')
    runs_dir = Option('./runs', 'with --name: the folder of the runs (the official '
                                '--checkpoints_dir)')
    epoch = Option('latest', "the checkpoint: 'latest', or N for the snapshot kept after "
                             'epoch N (train.py --save_epoch_freq), as the official --epoch')
    load_iter = Option(0, 'the checkpoint of iteration N (model.ckpt-N), as the official '
                          '--load_iter (0: see --epoch)', min=0)
    phase = Option('test', "the split of the run's dataset to translate")
    load_size = Option(0, 'resize images to load_size x load_size first, as the official test '
                          '(its load_size = crop_size; 0: translate them at their own size)',
                          min=0)
    aspect_ratio = Option(1.0, 'write the images with their width times this, as the '
                               'official --aspect_ratio', min_exclusive=0)
    display_winsize = Option(256, 'the width of the images in index.html, in pixels', min=1)
    max_pixels = Option(TILED_MAX_PIXELS, 'with --input: skip images of more pixels (height x '
                                          'width) than this, read from their headers before '
                                          'decoding (with --tile_size 0 an image takes about '
                                          '1 KB a pixel: give 4194304 for 4 GB)', min=1)
    tile_size = Option(512, 'translate an image larger than this (pixels, its longer side) in '
                            'tiles of this size, each with a margin covering the '
                            "generator's receptive field, in memory bounded by the tile size "
                            '(0: translate every image whole)', min=0)
    norm_stats_size = Option(512, "take a tiled image's normalization statistics from a copy "
                                  'downscaled to this many pixels on its longer side, '
                                  'exactly from the image where it is no larger (0: always '
                                  'exactly, in memory that grows with the image)', min=0)
    video_norm_stats = Option('first', "a video's normalization statistics: first (those of "
                                       'its first frame, for every frame), each (the running '
                                       'average over the frames so far: follows slow scene '
                                       'changes, about twice the time) or frame (each frame '
                                       'its own, as an image)',
                              choices=('first', 'each', 'frame'))


class EvaluateConfig(Settings):
    """Settings of evaluate.py: a run to translate and score, or two folders."""

    run = Option('', 'a run folder: translate its test split (as sample.py) and score the '
                     'translations by FID and KID against the real images of the target '
                     'domain (paired models: also L1, PSNR, SSIM against the ground truth)')
    checkpoint = SampleConfig.options()['checkpoint']
    best = SampleConfig.options()['best']
    eval = SampleConfig.options()['eval']
    num_test = SampleConfig.options()['num_test']
    results_dir = SampleConfig.options()['results_dir']
    data_root = SampleConfig.options()['data_root']
    tile_size = SampleConfig.options()['tile_size']
    norm_stats_size = SampleConfig.options()['norm_stats_size']
    real = Option('', 'instead of --run: a folder of real images, e.g. '
                      'datasets/horse2zebra/testB')
    fake = Option('', 'with --real: a folder of generated images to score against it')
    json = Option(False, 'print one JSON object (fid, kid_mean, kid_std, n_real, n_fake, ...) '
                         'instead of a table')
    fid_weights = ImageConfig.options()['fid_weights']
    batch_size = Option(50, 'images per batch of the Inception network', min=1)
    cache_features = Option(True, "reuse and keep each folder's features in the cache folder, "
                                  'keyed by its content and the weights')


class BenchConfig(Settings):
    """Settings of bench.py, besides the model's (--crop_size, --ngf, ...)."""

    iters = Option(10, 'timed iterations of each benchmark and of each --compare_pipeline block',
                   min=1)
    warmup = Option(3, 'untimed iterations first (graph optimization, memory allocation)',
                    min=0)
    infer_batch_size = Option(8, 'images per batch of the inference benchmark', min=1)
    compare_pipeline = Option(False, "also time train.py's loop fed by the input pipeline on "
                                     '--dataset against the same loop fed by batches held in '
                                     'memory, and report the slowdown the pipeline causes')
    rounds = Option(2, 'with --compare_pipeline: pairs of timed blocks (pipeline, in memory), '
                       'in alternating order', min=1)
    feature_images = Option(100, 'images (256 px) of the FID feature-extraction benchmark '
                                 '(0: skip it)', min=0)
    feature_batch = Option(25, 'images per batch of the FID feature-extraction benchmark',
                           min=1)


class ExportConfig(Settings):
    """Settings of export.py. As for sample.py, the model's own settings are
    read from the run's config.json."""

    run = Option('', 'the run to export, a folder <runs_dir>/<name> (its latest checkpoint; '
                     'default: the run in ./runs trained last)')
    checkpoint = Option('', 'a checkpoint to export instead of the latest, e.g. '
                            'runs/<name>/checkpoints/model.ckpt-1000')
    best = Option(False, "export the run's best checkpoint, the one named in "
                         '<run>/checkpoints/best.json')
    direction = Option('both', 'the direction to export; both: every direction the model '
                               'translates (CycleGAN AtoB and BtoA, pix2pix AtoB)',
                       choices=('AtoB', 'BtoA', 'both'))
    export_dir = Option('', 'the folder to write (default <run>/export): the export itself for '
                            'one direction, else one folder per direction, AtoB/ and BtoA/')
    format = Option('saved_model', 'what to write, comma-separated: saved_model (TF Serving, '
                                   'tf.saved_model.load), frozen_graph (frozen_graph.pb for '
                                   'TF1), tflite (model.tflite), onnx (model.onnx: uint8 in '
                                   'and out, model_float.onnx: float32 in [-1, 1]; needs '
                                   'requirements-onnx.txt)')
    tflite_size = Option('', 'a fixed input size of model.tflite, HxW or N for NxN (batch 1); '
                             'by default it takes any batch and size (resize its input '
                             'tensor before allocate_tensors)')
    onnx_size = Option('', 'a fixed input size of the ONNX models, HxW or N for NxN (batch 1), '
                           'for runtimes that need one; by default they take any batch and '
                           'size')
    train_mode = Option(False, 'run the generators as in training (batch statistics of each '
                               'request, dropout), as sample.py without --eval; the default '
                               'is inference mode, as sample.py --eval')
    overwrite = Option(False, 'replace an existing export folder (only one export.py wrote)')
    max_pixels = Option(MAX_PIXELS, 'the exported signatures refuse an image of more pixels '
                                    '(height x width) than this with an error to the client '
                                    '(translate_encoded reads the size from the file\'s header, '
                                    'before decoding); stored in the export', min=1)


class DemoConfig(Settings):
    """Settings of demo.py. As for sample.py, the model's own settings are
    read from the run's config.json."""

    run = Option('', 'the run to show, a folder <runs_dir>/<name> (its latest checkpoint; '
                     'default: the run in ./runs trained last)')
    checkpoint = Option('', 'a checkpoint to show instead of the latest, e.g. '
                            'runs/<name>/checkpoints/model.ckpt-1000')
    best = Option(False, "show the run's best checkpoint by FID (kept by train.py --eval_freq)")
    eval = SampleConfig.eval  # the generators' mode, as sample.py's
    tile_size = SampleConfig.tile_size  # images above it translate in tiles, as sample.py's
    norm_stats_size = SampleConfig.norm_stats_size
    host = Option('127.0.0.1', 'the address to serve the page on: 127.0.0.1 is this machine '
                               'only; 0.0.0.0 every network interface (anyone who reaches it)')
    port = Option(7860, 'the port to serve the page on', min=1, max=65535)
    share = Option(False, "also publish the page through Gradio's share servers (a public "
                          'URL for 72 hours); off unless given')
    max_size = Option(1024, 'images whose longer side is larger are scaled down to it before '
                            'they are translated, with a note on the page', min=1)
    max_megapixels = Option(60.0, 'uploads of more pixels than this are refused with a message '
                                  'on the page', min_exclusive=0)
    max_upload_mb = Option(100, 'uploads larger than this many MB are refused by the server',
                           min=1)
    num_examples = Option(4, "example images from the run's test split, per direction", min=0)
    num_points = Option(1000, 'the toy GAN: points drawn for each figure', min=1)
