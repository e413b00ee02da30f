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
:func:`define_flags`; :func:`from_flags` turns parsed flags into a config.
The effective config is saved as JSON with every run (:meth:`Config.save`) and
read back by :func:`load`, so sample.py rebuilds exactly the trained graph.
"""

import json
import os
import tempfile
import textwrap

from absl import flags


class ConfigError(ValueError):
    """A bad setting: unknown name, wrong type, value outside its choices."""


class Option:
    """A setting's default, help text and, optionally, its allowed values."""

    def __init__(self, default, help, choices=None):
        if choices is not None and default not in choices:
            raise ValueError(f'default {default!r} is not one of {choices}')
        self.default = default
        self.help = help
        self.choices = tuple(choices) if choices is not None else None

    def with_default(self, default):
        return Option(default, self.help, self.choices)

    @property
    def type(self):
        """The flag type, from the default: bool is tested before int."""
        for kind in (bool, int, float, str):
            if isinstance(self.default, kind):
                return kind
        raise TypeError(f'unsupported option type {type(self.default)}')

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
        return value


def _collect_options(cls):
    """Sets ``cls._options``: the parent's settings, then this class's own
    Options and plain-value overrides of inherited ones (help kept)."""
    options = {}
    for base in cls.__bases__:
        options.update(getattr(base, '_options', {}))
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

    def save(self, path):
        """Writes the config as JSON, atomically: a reader sees old or new, never half."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.config-', suffix='.json')
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(self.to_dict(), f, indent=2, sort_keys=True)
                f.write('\n')
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


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
    seed = Option(0, 'random seed of the graph, the data order and the image pool')

    # Optimization. Defaults are the paper's: Adam(2e-4, 0.5), 100 epochs at
    # constant rate, then 100 epochs of linear decay to zero.
    batch_size = Option(1, 'input batch size')
    lr = Option(0.0002, 'initial learning rate for Adam')
    beta1 = Option(0.5, 'momentum term of Adam')
    n_epochs = Option(100, 'number of epochs with the initial learning rate')
    n_epochs_decay = Option(100, 'number of epochs to linearly decay the learning rate to zero')
    lr_policy = Option('linear', 'learning rate policy: linear keeps lr for n_epochs, then '
                                 'decays it to zero over n_epochs_decay; step multiplies it by '
                                 '0.1 every lr_decay_iters epochs; cosine anneals it from lr '
                                 'to zero over all n_epochs + n_epochs_decay epochs',
                       choices=('linear', 'step', 'cosine'))
    lr_decay_iters = Option(50, 'step policy: multiply by 0.1 every lr_decay_iters epochs')
    gan_mode = Option('lsgan', 'GAN objective: least squares, the original cross-entropy '
                               '(on logits) or Wasserstein with gradient penalty',
                      choices=('lsgan', 'vanilla', 'wgangp'))
    lambda_gp = Option(10.0, 'weight of the gradient penalty (gan_mode wgangp)')
    max_steps = Option(0, 'stop after this many iterations (0: run all epochs)')

    # The loop's periodic actions, in iterations.
    print_freq = Option(100, 'frequency of log lines')
    summary_freq = Option(100, 'frequency of scalar summaries (losses, learning rate)')
    display_freq = Option(400, 'frequency of sample grids, in TensorBoard and samples/')
    save_freq = Option(5000, 'frequency of checkpoints (also saved at the end of each epoch)')
    trace_freq = Option(0, 'frequency of full run traces (time and memory per op) '
                           'in TensorBoard (0: never)')
    keep_checkpoints = Option(5, 'number of most recent checkpoints to keep')

    # Hardware: data-parallel training and the GPU's speed-ups (distribute.py).
    num_replicas = Option(1, 'replicas of the model trained in step (data parallel), each on '
                             'batch_size examples: GPUs 0..N-1, else N logical CPU devices; '
                             'with TF_CONFIG, the GPUs of each worker (one CPU replica each)')
    amp = Option(False, 'mixed precision on a GPU: float16 where safe by TensorFlow\'s graph '
                        'rewrite (auto_mixed_precision; no loss scaling yet); accepted on a '
                        'CPU, where it does nothing')
    xla = Option(False, 'compile the training graph with XLA on a GPU (global_jit_level '
                        'ON_1; accepted on a CPU, where it does nothing)')
    worker_timeout = Option(600, 'with TF_CONFIG: seconds a worker waits on the others in a '
                                 'step before it stops with an error (a dead worker)')

    @property
    def run_name(self):
        return self.name or f'{os.path.basename(os.path.normpath(str(self.dataset)))}_{self.model}'

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
    download_url = Option('', 'base URL of the dataset server, for mirrors (default: '
                              '$CYCLEGAN_DATASETS_URL, else the official server)')
    direction = Option('AtoB', 'translate A to B or B to A', choices=('AtoB', 'BtoA'))
    input_nc = Option(3, 'number of input image channels: 3 for RGB, 1 for grayscale')
    output_nc = Option(3, 'number of output image channels: 3 for RGB, 1 for grayscale')

    # Preprocessing, as the official implementation: resize to load_size, then
    # a random crop_size crop and a random horizontal flip.
    preprocess = Option('resize_and_crop', 'scaling and cropping of images at load time',
                        choices=('resize_and_crop', 'crop', 'scale_width',
                                 'scale_width_and_crop', 'none'))
    load_size = Option(286, 'scale images to this size')
    crop_size = Option(256, 'then crop to this size')
    no_flip = Option(False, 'flip images left-right at random, for data augmentation '
                            '(--flip; --noflip or the official --no_flip turns it off)')
    serial_batches = Option(False, 'take B in order, not at random (unaligned data)')
    max_dataset_size = Option(0, 'use at most this many images per domain (0: all)')
    num_threads = Option(4, 'threads decoding images')

    # Networks.
    ngf = Option(64, 'number of generator filters in the last conv layer')
    ndf = Option(64, 'number of discriminator filters in the first conv layer')
    netG = Option('resnet_9blocks', 'generator architecture',
                  choices=('resnet_9blocks', 'resnet_6blocks', 'unet_256', 'unet_128'))
    netD = Option('basic', 'discriminator: basic is the 70x70 PatchGAN, n_layers uses '
                           'n_layers_D, pixel is the 1x1 PixelGAN',
                  choices=('basic', 'n_layers', 'pixel'))
    n_layers_D = Option(3, 'number of stride-2 layers of the n_layers discriminator')
    norm = Option('instance', 'normalization: instance (no affine parameters), batch or none',
                  choices=('instance', 'batch', 'none'))
    init_type = Option('normal', 'weight initialization',
                       choices=('normal', 'xavier', 'kaiming', 'orthogonal'))
    init_gain = Option(0.02, 'scaling factor of normal, xavier and orthogonal initialization')
    no_dropout = Option(False, 'dropout in the generator (--dropout; --nodropout or the '
                               'official --no_dropout turns it off)')


class CycleGANConfig(ImageConfig):
    """CycleGAN (Zhu et al. 2017) with the paper's and the official defaults."""

    model = 'cycle_gan'
    no_dropout = True
    lambda_A = Option(10.0, 'weight of the cycle loss A -> B -> A')
    lambda_B = Option(10.0, 'weight of the cycle loss B -> A -> B')
    lambda_identity = Option(0.5, 'weight of the identity loss, relative to lambda_A and '
                                  'lambda_B (0: no identity loss)')
    pool_size = Option(50, 'size of the history of generated images shown to the '
                           'discriminators (0: no history)')


class Pix2PixConfig(ImageConfig):
    """pix2pix (Isola et al. 2017) with the official defaults. The official
    commands train facades with --direction BtoA (labels to photos)."""

    model = 'pix2pix'
    dataset = 'facades'
    netG = 'unet_256'
    norm = 'batch'
    gan_mode = 'vanilla'
    lambda_L1 = Option(100.0, 'weight of the L1 loss between output and target')


class ColorizationConfig(Pix2PixConfig):
    """pix2pix from the lightness of a photo to its colours, as the official
    colorization model: input L (input_nc 1), output ab (output_nc 2) of CIE
    Lab. Any folder of RGB images serves as data (train/ and test/, or the
    domains of an unaligned set); the built-in default works offline."""

    model = 'colorization'
    dataset = 'shapes2stripes'
    input_nc = 1
    output_nc = 2


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
    steps_per_epoch = Option(100, 'iterations per epoch (toy_gan draws fresh samples each step)')
    noise_dim = Option(2, 'dimension of the Gaussian noise fed to the generator')
    hidden_units = Option(64, 'units per hidden layer of the MLP generator and discriminator')
    hidden_layers = Option(2, 'hidden layers of the MLP generator and discriminator')
    toy_mean = Option('1,1', 'mean of the target Gaussian, "x,y" (with toy_modes: the '
                             'centre of the ring)')
    toy_cov = Option('1,0.5,0.5,1', 'covariance of the target Gaussian, row-major '
                                    '"xx,xy,yx,yy", symmetric positive definite')
    toy_modes = Option(0, 'target: a ring of this many Gaussians around toy_mean '
                          '(0: the single Gaussian of toy_mean and toy_cov)')
    toy_radius = Option(2.0, 'radius of the ring of toy_modes Gaussians')
    toy_mode_std = Option(0.1, 'standard deviation of each Gaussian of the ring')

    def __init__(self, **overrides):
        super().__init__(**overrides)
        _ = self.target_mean, self.target_cov  # parsed now: a bad string fails here
        if self.toy_modes < 0 or self.toy_radius < 0 or self.toy_mode_std <= 0:
            raise ConfigError('toy_modes and toy_radius must be >= 0, toy_mode_std > 0')
        if min(self.steps_per_epoch, self.noise_dim, self.hidden_units) < 1:
            raise ConfigError('steps_per_epoch, noise_dim and hidden_units must be >= 1')

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
        return self.name or f'{target}_{self.model}'


def _floats(name, text, count):
    """``count`` floats from a comma-separated string, or ConfigError."""
    try:
        values = tuple(float(v) for v in text.split(','))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f'{name} must be {count} comma-separated numbers, got {text!r}')
    return values


# How --help groups the options, in this order. Every option of every model
# is in one group (a test checks).
GROUPS = {
    'run': ('model', 'name', 'runs_dir', 'seed', 'max_steps'),
    'data': ('dataset', 'data_root', 'download_url', 'direction', 'input_nc', 'output_nc',
             'preprocess', 'load_size', 'crop_size', 'no_flip', 'serial_batches',
             'max_dataset_size', 'num_threads', 'toy_mean', 'toy_cov', 'toy_modes',
             'toy_radius', 'toy_mode_std', 'steps_per_epoch'),
    'network': ('netG', 'netD', 'n_layers_D', 'ngf', 'ndf', 'norm', 'init_type', 'init_gain',
                'no_dropout', 'noise_dim', 'hidden_units', 'hidden_layers'),
    'objective': ('gan_mode', 'lambda_A', 'lambda_B', 'lambda_identity', 'lambda_L1',
                  'lambda_gp', 'pool_size'),
    'optimization': ('batch_size', 'lr', 'beta1', 'n_epochs', 'n_epochs_decay', 'lr_policy',
                     'lr_decay_iters'),
    'logging': ('print_freq', 'summary_freq', 'display_freq', 'save_freq', 'trace_freq',
                'keep_checkpoints'),
    'hardware': ('num_replicas', 'amp', 'xla', 'worker_timeout'),
}
NEGATIVE_PREFIX = 'no_'  # no_flip, no_dropout: also given as --flip / --noflip


def _models():
    import registry  # registry imports this module: looked up at call time

    return registry.MODELS


def _flag_options():
    """The union of all models' settings, each with its default for cycle_gan
    (or its first model) and the other models' defaults noted in the help."""
    models = _models()
    merged = {}
    for model, spec in models.items():
        for name, option in spec.config.options().items():
            merged.setdefault(name, (option, {}))[1][model] = option.default
    result = {}
    for name, (option, defaults) in merged.items():
        others = {m: d for m, d in defaults.items() if d != option.default}
        help_text, choices = option.help, option.choices
        if name == 'model':
            others, choices = {}, tuple(models)
        if len(defaults) < len(models):
            help_text += f' [{", ".join(defaults)} only]'
        if others:
            help_text += ' [default ' + ', '.join(f'for {m}: {d}' for m, d in others.items()) + ']'
        result[name] = Option(option.default, help_text, choices)
    return result


def _positive_twin(name):
    """'flip' for the option 'no_flip': a flag that reads naturally when the
    option defaults to true (--dropout rather than --nono_dropout)."""
    return name[len(NEGATIVE_PREFIX):] if name.startswith(NEGATIVE_PREFIX) else None


def define_flags(flag_values=None, module_name='config', settings=None):
    """Registers one flag per setting of every known model, or of the Settings
    class ``settings`` (a tool's, such as SampleConfig). Idempotent. Each
    boolean ``no_<x>`` also gets the flag ``<x>``, its opposite."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    options = _flag_options() if settings is None else settings.options()
    for name, option in options.items():
        if name in flag_values:
            continue
        kwargs = dict(flag_values=flag_values, module_name=module_name)
        if option.choices is not None:
            flags.DEFINE_enum(name, option.default, list(option.choices), option.help, **kwargs)
        else:
            define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
                      float: flags.DEFINE_float, str: flags.DEFINE_string}[option.type]
            define(name, option.default, option.help, **kwargs)
        twin = _positive_twin(name) if option.type is bool else None
        if twin and twin not in flag_values:
            flags.DEFINE_bool(twin, None, f'the opposite of --{name}', **kwargs)
    return flag_values


def given_options(flag_values, options):
    """name -> value of the ``options`` given on the command line, a
    positive twin (--flip) given as its option (no_flip=False)."""
    given = {name: flag_values[name].value for name in options if flag_values[name].present}
    for name in options:
        twin = _positive_twin(name)
        if twin and twin in flag_values and flag_values[twin].present:
            if name in given and given[name] == flag_values[twin].value:
                raise ConfigError(f'--{name} and --{twin} contradict each other')
            given[name] = not flag_values[twin].value
    return given


def from_flags(flag_values=None, argv=None):
    """The config of ``--model`` with the flags given on the command line.

    Flags left at their default take the model's own default (pix2pix gets
    unet_256 even though the flag's default is resnet_9blocks). A flag that does
    not apply to the chosen model is an error. ``argv``, when given, is parsed
    first, so tests never depend on ``sys.argv``.
    """
    flag_values = define_flags(flag_values)
    if argv is not None:
        try:
            flag_values(argv)
        except flags.Error as e:
            raise ConfigError(str(e)) from None
    cls = config_class(flag_values['model'].value)
    given = given_options(flag_values, _flag_options())
    given.pop('model', None)
    foreign = sorted(set(given) - set(cls.options()))
    if foreign:
        raise ConfigError(f'--{foreign[0]} does not apply to --model {cls.model}')
    return cls(**given)


def config_class(model):
    """The config class of the model named ``model`` (see registry.py)."""
    import registry

    return registry.get(model).config


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


def settings_from_flags(settings, flag_values):
    """An instance of the settings class ``settings`` from parsed flags."""
    return settings(**{name: flag_values[name].value for name in settings.options()})


def load(path):
    """Reads a config saved by :meth:`Config.save`; its class comes from 'model'."""
    try:
        with open(path) as f:
            values = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f'no config at {path}') from None
    except (OSError, ValueError) as e:
        raise ConfigError(f'cannot read config {path}: {e}') from None
    if not isinstance(values, dict) or 'model' not in values:
        raise ConfigError(f'{path} is not a config saved by this project')
    return config_class(values['model'])(**values)


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
    if option.choices:
        head += f'; one of {", ".join(map(str, option.choices))}'
    return [head, textwrap.fill(option.help, width=96, initial_indent=' ' * 6,
                                subsequent_indent=' ' * 6)]


def help_text(model=None, settings=None):
    """--help: the options of ``model`` (a name; None: of every model, as
    --helpfull), grouped by topic; or those of the Settings class ``settings``."""
    if settings is not None:
        return '\n'.join(line for name, option in settings.options().items()
                         for line in _describe(name, option))
    union = _flag_options()
    names = union if model is None else config_class(model).options()
    options = {name: union[name] if model is None or name == 'model'
               else config_class(model).options()[name] for name in names}
    lines = []
    for group, members in GROUPS.items():
        present = [name for name in members if name in options]
        if present:
            lines.append(f'{group}:')
            lines.extend(line for name in present for line in _describe(name, options[name]))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Settings of the tools. Their flags: define_flags(flag_values, settings=...).

class SampleConfig(Settings):
    """Settings of sample.py. The model's own settings are read from the run's
    config.json, never from flags: what was trained is what is rebuilt."""

    run = Option('', 'the run to sample from, a folder <runs_dir>/<name> (its latest checkpoint)')
    checkpoint = Option('', 'a checkpoint to sample from instead of --run, e.g. '
                            'runs/<name>/checkpoints/model.ckpt-1000')
    input = Option('', 'an image file or a folder of images to translate instead of the '
                       "test split of the run's dataset")
    direction = Option('AtoB', 'with --input: translate from A to B or from B to A',
                       choices=('AtoB', 'BtoA'))
    results_dir = Option('', 'folder for the images, index.html and grid.png '
                             '(default: <run>/test_<step>)')
    num_test = Option(0, 'translate at most this many images per direction (0: all)')
    data_root = Option('', "folder holding the datasets (default: the run's data_root)")
    eval = Option(False, 'run the generators as at inference (batch-norm moving averages, no '
                         'dropout); the default runs them as in training, as the official test.py')


class BenchConfig(Settings):
    """Settings of bench.py, besides the model's (--crop_size, --ngf, ...)."""

    iters = Option(10, 'timed iterations of each benchmark and of each --compare_pipeline block')
    warmup = Option(3, 'untimed iterations first (graph optimization, memory allocation)')
    infer_batch_size = Option(8, 'images per batch of the inference benchmark')
    compare_pipeline = Option(False, "also time train.py's loop fed by the input pipeline on "
                                     '--dataset against the same loop fed by batches held in '
                                     'memory, and report the slowdown the pipeline causes')
    rounds = Option(2, 'with --compare_pipeline: pairs of timed blocks (pipeline, in memory), '
                       'in alternating order')
