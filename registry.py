"""The models, found by name: the one table that lists them.

train.py, sample.py, bench.py, export and the other tools, ``--help`` and
the dataset layer know a model only through its entry here::

    name            config class         Model class          data
    cycle_gan       CycleGANConfig       model.CycleGAN       unaligned image folders
    pix2pix         Pix2PixConfig        model.Pix2Pix        aligned A|B image pairs
    colorization    ColorizationConfig   model.Colorization   RGB photos (L -> ab)
    toy_gan         ToyGANConfig         model.ToyGAN         its own sampler of points

What each part says about the model:

- the config class (config.py): its options and defaults, and in
  ``ARCHITECTURE`` the options that shape its variables (a resumed run cannot
  change them);
- the Model class (model.py): its graph, networks and losses, its inference
  outputs by role (``build_inference``), its input pipeline
  (``input_pipeline``), what the training loop does for it beyond the common
  steps (state outside the graph such as CycleGAN's image pools,
  ``host_state``; a report at the end of each epoch such as the toy GAN's
  discriminator accuracy and figure, ``epoch_report``);
- ``data``: the folder layout of the datasets it reads (datasets.py), or
  TOY for a model that makes its own data and has no dataset. It also says
  how sample.py presents results: image models are translated and shown in
  an HTML page, TOY models draw samples and their figure.

Adding a model: write its config class and its Model subclass (in model.py or
a module of its own, named by ``model`` below), then add one line to MODELS.

This module imports no TensorFlow: scripts check their command line with it
before paying TensorFlow's import. The Model class is imported on first use.
"""

import dataclasses
import importlib

import config
from datasets import ALIGNED, COLORIZATION, UNALIGNED

TOY = 'toy'  # data: the model samples its own training data; no dataset


@dataclasses.dataclass(frozen=True)
class Spec:
    """One model: its name, config class, Model class and data (see above)."""

    name: str
    config: type  # a config.Config subclass whose ``model`` default is ``name``
    model: str  # 'module.Class' of its model.Model subclass
    data: str  # UNALIGNED, ALIGNED, COLORIZATION (datasets.py) or TOY
    summary: str  # one line for --help

    def __post_init__(self):
        if self.config.options()['model'].default != self.name:
            raise ValueError(f'{self.config.__name__}.model must be {self.name!r}')

    @property
    def model_class(self):
        """The Model subclass (imports its module, hence TensorFlow)."""
        module, name = self.model.rsplit('.', 1)
        return getattr(importlib.import_module(module), name)

    @property
    def images(self):
        """Whether the model translates images (reads a dataset of image files)."""
        return self.data != TOY

    @property
    def architecture(self):
        """The options that shape the variables, 'model' first."""
        return ('model',) + tuple(self.config.ARCHITECTURE)


MODELS = {spec.name: spec for spec in (
    Spec('cycle_gan', config.CycleGANConfig, 'model.CycleGAN', UNALIGNED,
         'CycleGAN (Zhu et al. 2017): unpaired translation A <-> B'),
    Spec('pix2pix', config.Pix2PixConfig, 'model.Pix2Pix', ALIGNED,
         'pix2pix (Isola et al. 2017): paired translation A -> B'),
    Spec('colorization', config.ColorizationConfig, 'model.Colorization', COLORIZATION,
         'pix2pix from the lightness of photos to their colours'),
    Spec('toy_gan', config.ToyGANConfig, 'model.ToyGAN', TOY,
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
