"""The models, found by name: the one table that lists them.

train.py, sample.py, bench.py, export and the other tools, ``--help`` and
the dataset layer know a model only through its entry here::

    name            config class         Model class                  data
    cycle_gan       CycleGANConfig       models/cycle_gan CycleGAN    unaligned image folders
    pix2pix         Pix2PixConfig        models/pix2pix Pix2Pix       aligned A|B image pairs
    colorization    ColorizationConfig   models/pix2pix Colorization  RGB photos (L -> ab)
    cut             CUTConfig            models/cut CUT               unaligned image folders
    toy_gan         ToyGANConfig         models/toy_gan ToyGAN        its own sampler of points

What each part says about the model:

- the config class (config.py): its options and defaults, and in
  ``ARCHITECTURE`` the options that shape its variables (a resumed run cannot
  change them);
- the Model class (a model.Model subclass in models/): its graph, networks and losses, its inference
  outputs by role (``build_inference``), its input pipeline
  (``input_pipeline``), what the training loop does for it beyond the common
  steps (state outside the graph such as CycleGAN's image pools,
  ``host_state``; a report at the end of each epoch such as the toy GAN's
  discriminator accuracy and figure, ``epoch_report``);
- ``data``: the folder layout of the datasets it reads (data/layouts.py), or
  TOY for a model that makes its own data and has no dataset. It also says
  how sample.py presents results: image models are translated and shown in
  an HTML page, TOY models draw samples and their figure.

Adding a model: write its config class (config.py) and its Model subclass
in a file of its own under models/, then add one line to MODELS.

The registry also holds what needs every model: the flags of all their
settings, the config of the model a command line names (:func:`from_flags`)
and --help. This module imports no TensorFlow: scripts check their command
line with it before paying TensorFlow's import. The Model class is imported
on first use.
"""

import dataclasses
import importlib

from absl import flags

from cyclegan_tf import config
from cyclegan_tf.data.layouts import ALIGNED, COLORIZATION, UNALIGNED

TOY = 'toy'  # data: the model samples its own training data; no dataset


@dataclasses.dataclass(frozen=True)
class Spec:
    """One model: its name, config class, Model class and data (see above)."""

    name: str
    config: type  # a config.Config subclass whose ``model`` default is ``name``
    model: str  # its model.Model subclass: '.models.<module>.<Class>' (or any module's path)
    data: str  # UNALIGNED, ALIGNED, COLORIZATION (data/layouts.py) or TOY
    summary: str  # one line for --help

    def __post_init__(self):
        if self.config.options()['model'].default != self.name:
            raise ValueError(f'{self.config.__name__}.model must be {self.name!r}')

    @property
    def model_class(self):
        """The Model subclass (imports its module, hence TensorFlow)."""
        module, name = self.model.rsplit('.', 1)
        return getattr(importlib.import_module(module, __package__), name)

    @property
    def images(self):
        """Whether the model translates images (reads a dataset of image files)."""
        return self.data != TOY

    @property
    def architecture(self):
        """The options that shape the variables, 'model' first."""
        return ('model',) + tuple(self.config.ARCHITECTURE)


MODELS = {spec.name: spec for spec in (
    Spec('cycle_gan', config.CycleGANConfig, '.models.cycle_gan.CycleGAN', UNALIGNED,
         'CycleGAN (Zhu et al. 2017): unpaired translation A <-> B'),
    Spec('pix2pix', config.Pix2PixConfig, '.models.pix2pix.Pix2Pix', ALIGNED,
         'pix2pix (Isola et al. 2017): paired translation A -> B'),
    Spec('colorization', config.ColorizationConfig, '.models.pix2pix.Colorization', COLORIZATION,
         'pix2pix from the lightness of photos to their colours'),
    Spec('cut', config.CUTConfig, '.models.cut.CUT', UNALIGNED,
         'CUT and FastCUT (Park et al. 2020): contrastive unpaired translation A -> B'),
    Spec('toy_gan', config.ToyGANConfig, '.models.toy_gan.ToyGAN', TOY,
         'a GAN of points in the plane, trained in seconds'),
)}


def get(name):
    """The Spec of model ``name``; ConfigError naming the choices otherwise."""
    if isinstance(name, str) and name in MODELS:
        return MODELS[name]
    raise config.ConfigError(f'unknown model {name!r}; choose one of {", ".join(MODELS)}')


def of(cfg):
    """The Spec of a config's model."""
    return get(cfg.model)


def create(cfg, **kwargs):
    """The model of ``cfg``, built into the default graph for one device
    (running/replicas.create builds it for replicas and loss scaling)."""
    return of(cfg).model_class(cfg, **kwargs)


# ------------------------------------------------------- every model's flags


_TENSORBOARD = ('losses, sample grids and the graph are in TensorBoard: tensorboard --logdir '
                '<runs_dir>')


# Official options with nothing to set here: accepted, with one line saying
# what to use instead. name -> (flag type, the line).
NOTES = {
    'continue_train': (bool, 'resuming is automatic: the same command continues a run from '
                             'its latest checkpoint (--restart starts it over)'),
    'display_id': (str, f'there is no visdom display: {_TENSORBOARD}'),
    'display_server': (str, f'there is no visdom server: {_TENSORBOARD}'),
    'display_port': (str, f'there is no visdom server: {_TENSORBOARD}'),
    'display_env': (str, f'there is no visdom display: {_TENSORBOARD}'),
    'display_ncols': (str, f'there is no visdom display: {_TENSORBOARD}'),
    'use_wandb': (bool, f'there is no Weights & Biases logging: {_TENSORBOARD}'),
    'wandb_project_name': (str, f'there is no Weights & Biases logging: {_TENSORBOARD}'),
    'update_html_freq': (str, f'train.py writes no HTML page: {_TENSORBOARD}; sample.py writes '
                              'index.html'),
    'no_html': (bool, 'train.py writes no HTML page anyway (sample.py does)'),
    'display_winsize': (str, 'train.py writes no HTML page: give --display_winsize to sample.py'),
    'save_by_iter': (bool, 'checkpoints are always named by iteration (model.ckpt-<step>); '
                           '--save_epoch_freq keeps snapshots by epoch'),
}


def define_flags(flag_values):
    """Registers the flags of every model's settings (:func:`flag_options`) in
    ``flag_values``, the official ALIASES, the official options that have
    nothing to set here (NOTES) and --dataset_mode. Idempotent."""
    config.define_flags(flag_values, flag_options(), module_name='registry')
    for name, (kind, line) in NOTES.items():
        if name not in flag_values:
            config.FLAG_TYPES[kind](name, None, f'official option, nothing to set here: {line}',
                                    flag_values=flag_values, module_name='registry')
    if 'dataset_mode' not in flag_values:
        flags.DEFINE_string('dataset_mode', None, "the official name of the data's layout: "
                            'checked against the model (unaligned, aligned, colorization)',
                            flag_values=flag_values, module_name='registry')
    return flag_values


def flag_options():
    """The union of all models' settings, each with its default for cycle_gan
    (or its first model) and the other models' defaults noted in the help."""
    models = MODELS
    merged = {}
    for model, spec in models.items():
        for name, option in spec.config.options().items():
            first = merged.setdefault(name, (option, {}))
            first[1][model] = option.default
            if option._bounds() != first[0]._bounds():
                raise TypeError(f'{name} has different ranges in different models')
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
        result[name] = config.Option(option.default, help_text, choices, **option._bounds())
    return result


def official_notes(flag_values):
    """The lines of the NOTES flags given on the command line."""
    return [f'--{name}: {line}' for name, (_, line) in NOTES.items()
            if name in flag_values and flag_values[name].present]


def from_flags(flag_values=None, argv=None):
    """The config of ``--model`` with the flags given on the command line.

    Flags left at their default take the model's own default (pix2pix gets
    unet_256 even though the flag's default is resnet_9blocks). A flag that does
    not apply to the chosen model is an error. ``argv``, when given, is parsed
    first, so tests never depend on ``sys.argv``.
    """
    flag_values = define_flags(flags.FlagValues() if flag_values is None else flag_values)
    if argv is not None:
        config.parse_argv(flag_values, argv)
    cls = get(flag_values['model'].value).config
    given = config.given_options(flag_values, flag_options())
    given.pop('model', None)
    foreign = sorted(set(given) - set(cls.options()))
    if foreign:
        raise config.ConfigError(f'--{foreign[0]} does not apply to --model {cls.model}')
    mode = flag_values['dataset_mode'].value if 'dataset_mode' in flag_values else None
    if mode is not None:
        layout = get(cls.model).data
        if mode != layout:
            hint = ' (sample.py reads single images with --input)' if mode == 'single' else ''
            raise config.ConfigError(f'--dataset_mode {mode}: the {cls.model} model reads '
                                     f'{layout} data{hint}')
    return cls(**given)


def help_text(model=None):
    """--help: the options of ``model`` (a name; None: of every model, as
    --helpfull), grouped by topic."""
    union = flag_options()
    if model is None:
        return config.help_text(union)
    own = get(model).config.options()
    return config.help_text({name: union[name] if name == 'model' else option
                            for name, option in own.items()})
