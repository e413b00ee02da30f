"""A trained run's generators as a Python object: images in, translations out.

    from cyclegan_tf.inference import Translator
    translator = Translator.from_run('runs/horse2zebra_cycle_gan')
    zebra = translator.translate(Image.open('horse.jpg'))  # uint8 [H, W, 3]

The generators are rebuilt from the run's config.json (what was trained is
what is rebuilt) and restored from its latest checkpoint, or a given one.
Images of any size are reflected at the bottom and right to the networks'
multiple and cropped back. An image larger than ``tile_size`` pixels is
translated tile by tile, its normalization statistics taken once for the
whole image (or a copy downscaled to ``norm_stats_size``), in memory bounded
by the tile size (evaluation/tiling.py). The same passes give an image's
statistics (Translator.statistics) and translate with given ones (a video's
first frame's: sample.py --video_norm_stats). sample.py and the other tools
build on this.
"""

import functools

import numpy as np

from cyclegan_tf import config, registry
from cyclegan_tf.evaluation import tiling
from cyclegan_tf.running import checkpoints, runs, session

OTHER = {'A': 'B', 'B': 'A'}
TILE_SIZE = config.SampleConfig.options()['tile_size'].default
NORM_STATS_SIZE = config.SampleConfig.options()['norm_stats_size'].default


def pad_to(image, multiple, minimum=1):
    """``image`` [H, W, C] reflected at the bottom and right to heights and
    widths that are multiples of ``multiple`` and at least ``minimum``. An
    image smaller than its padding is mirrored again (a 1 px one repeated)."""
    for axis in (0, 1):
        size = image.shape[axis]
        target = max(size, minimum) + -max(size, minimum) % multiple
        while image.shape[axis] < target:
            size = image.shape[axis]
            pad = [(0, 0)] * image.ndim
            pad[axis] = (0, min(target - size, size - 1) if size > 1 else target - size)
            image = np.pad(image, pad, mode='reflect' if size > 1 else 'edge')
    return image


def latest_checkpoint(run_dir):
    """The prefix of the newest complete checkpoint of ``run_dir`` (with a
    warning where checkpoints/checkpoint names another, or a newer one is
    incomplete); RunError if there is none."""
    path = checkpoints.newest_checkpoint(runs.checkpoint_dir(run_dir))
    if path is None:
        raise runs.RunError(f'the checkpoint files of {run_dir} are missing')
    return path


class _Restored:
    """What the restored graphs below share: a session to close, also by ``with``."""

    sess = None

    def close(self):
        self.sess.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Translator(_Restored):
    """The inference graph of an image model's run, restored from a checkpoint.

    ``translator(key, image)`` translates an image [H, W, C] in [-1, 1] of
    domain ``key`` ('A' or 'B'); :meth:`translate` takes a PIL image or a
    uint8 array and gives uint8. ``training`` runs the generators as in
    training (dropout, batch statistics), the official test.py's default
    (sample.py's --eval turns it off). ``tile_size`` and ``norm_stats_size``
    as sample.py's --tile_size and --norm_stats_size (models without
    Model.inference_generators translate every image whole).
    ``given_statistics`` builds, also with tile_size 0, the passes of
    :meth:`statistics` and of translating with given statistics (built
    anyway where tile_size is not 0).
    """

    def __init__(self, cfg, checkpoint, *, training=False, networks=None, tile_size=TILE_SIZE,
                 norm_stats_size=NORM_STATS_SIZE, given_statistics=False):
        self.cfg, self.checkpoint, self.step = cfg, checkpoint, runs.step_of(checkpoint)
        self.networks = networks  # the trained ones (runs.trained_networks); None: all
        self.spec = registry.of(cfg)
        if not self.spec.images:
            raise runs.RunError(f'a {cfg.model} run translates no images')
        self.roles = self.spec.model_class  # TRANSLATIONS, RECONSTRUCTIONS of the model
        tf = session.graph_mode()
        tf1 = tf.compat.v1
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs, self.outputs = self.roles.build_inference(cfg, training=training)
            variables = tf1.global_variables()
            saver = tf1.train.Saver(variables)
            # 0: whole images, each with its own statistics
            self.tiled = self._build_tiled(training) if tile_size or given_statistics else {}
            with tf.name_scope('from_rgb'):  # images from memory, as training reads files
                from cyclegan_tf.data import pipeline

                self.rgb = tf1.placeholder(tf.uint8, [None, None, 3], name='rgb')
                self.from_rgb = {key: pipeline.model_input(
                    tf.cast(self.rgb, tf.float32), self.spec.data, self.channels(key))
                    for key in self.keys}
        self.graph.finalize()
        self.sess = tf1.Session(graph=self.graph, config=session.session_config(training=False))
        checkpoints.restore_checkpoint(self.sess, saver, variables, checkpoint)
        self.multiple, self.min_size = self.roles.input_sizes(cfg)
        self.tile_size, self.norm_stats_size = tile_size, norm_stats_size
        self.on_tile = None  # on_tile(done, total) after each tile (see tiling.TiledGenerator)

    def _build_tiled(self, training):
        """{key: tiling.TiledGenerator}: the model's generators again, reusing
        the variables of the inference graph, under name scope ``tiled``."""
        tf1 = session.graph_mode().compat.v1
        count = len(tf1.global_variables())
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True), \
                tf1.name_scope('tiled/'):
            tiled = {key: tiling.TiledGenerator(
                network, training=training,
                post=functools.partial(self.roles.translation_of, key))
                for key, network in self.roles.inference_generators(self.cfg).items()}
        if len(tf1.global_variables()) != count:
            raise AssertionError('the tiled generators made variables of their own')
        return tiled

    @classmethod
    def from_run(cls, run, *, checkpoint=None, eval=False, **tiles):
        """The Translator of the run folder ``run`` (its latest checkpoint,
        or the checkpoint prefix ``checkpoint``); ``eval`` as sample.py's
        --eval; ``tiles``: tile_size, norm_stats_size, given_statistics."""
        cfg = runs.load_config(run)
        checkpoint = checkpoint or latest_checkpoint(run)
        return cls(cfg, checkpoint, training=not eval,
                   networks=runs.trained_networks(run, checkpoint), **tiles)

    @property
    def keys(self):
        """The input domains the model translates: ('A', 'B') or ('A',), less
        those whose generator holds no trained weights (an imported run)."""
        return tuple(key for key in self.roles.TRANSLATIONS if self._trained(key))

    def _trained(self, key):
        return self.networks is None or self.roles.GENERATORS.get(key) in self.networks

    def channels(self, key):
        """The channels of the model's input images of domain ``key``."""
        return int(self.inputs[key].shape[-1])

    def fetches(self, key):
        """{'translation', 'reconstruction'?}: the output names for input ``key``."""
        if key not in self.roles.TRANSLATIONS:
            raise runs.RunError(f'a {self.cfg.model} model translates from '
                                f'{" and ".join(self.keys)} only, not from {key}')
        if not self._trained(key):
            able = ', '.join(f'{k}to{OTHER[k]}' for k in self.keys)
            raise runs.RunError(f'this run holds an imported {" and ".join(self.networks)} '
                                f'only: it translates {able}, not {key}to{OTHER[key]}')
        names = {'translation': self.roles.TRANSLATIONS[key]}
        if key in self.roles.RECONSTRUCTIONS and self._trained(OTHER[key]):
            names['reconstruction'] = self.roles.RECONSTRUCTIONS[key]
        return names

    def __call__(self, key, image, *, reconstruct=True, statistics=None):
        """{'translation', 'reconstruction'?}: arrays [H, W, C] in [-1, 1] of
        ``image`` [H, W, C] in [-1, 1] of domain ``key`` (the reconstruction
        where the model has one and ``reconstruct``). ``statistics`` (of
        :meth:`statistics`, of another image) normalize the translation
        instead of the image's own; the reconstruction has its own."""
        names = self.fetches(key)
        if not reconstruct:
            names.pop('reconstruction', None)
        height, width = image.shape[:2]
        padded = pad_to(image, self.multiple, self.min_size)
        if statistics is not None or self.tiles(key, image.shape):
            tiles = self.tiles(key, image.shape)
            results = {'translation': self._tiled(key, padded, tiles, statistics)}
            if 'reconstruction' in names:
                results['reconstruction'] = self._tiled(OTHER[key], results['translation'],
                                                        tiles)
            return {k: v[:height, :width] for k, v in results.items()}
        results = self.sess.run({k: self.outputs[n] for k, n in names.items()},
                                {self.inputs[key]: padded[None]})
        return {k: v[0, :height, :width] for k, v in results.items()}

    def tiles(self, key, shape):
        """Whether an image of ``shape`` [H, W, ...] of domain ``key`` is
        translated in tiles: larger than tile_size (not 0), and the model
        has inference_generators."""
        return bool(self.tile_size) and key in self.tiled and max(shape[:2]) > self.tile_size

    def _tiled(self, key, padded, tiles, statistics=None):
        """The translation of ``padded`` by the tile passes: in tiles where
        ``tiles``, else whole as one tile (with exact statistics)."""
        if key not in self.tiled:
            raise ValueError(f'a {self.cfg.model} model translates with the statistics of '
                             f'each image only (Translator.statistics is None)')
        return self.tiled[key].translate(
            self.sess, padded, tile=self.tile_size if tiles else max(padded.shape[:2]),
            stats_size=self.norm_stats_size if tiles else 0, statistics=statistics,
            on_tile=self.on_tile if tiles else None)

    def statistics(self, image, direction='AtoB'):
        """The normalization statistics :meth:`translate` takes from ``image``
        (arguments as there): {layer: (mean, variance)} of float32 arrays
        [1, 1, 1, C] ({} for a network without image statistics: no norm, or
        batch norm with --eval), taken from the image whole, or from its
        thumbnail where it is tiled (--norm_stats_size); to give
        ``statistics=`` for other images. None where the model cannot
        translate with given statistics (no Model.inference_generators, or a
        Translator built with tile_size 0 and no ``given_statistics``)."""
        key = direction[0]
        self.fetches(key)
        if key not in self.tiled:
            return None
        image = self._model_input(image, key)
        tiles = self.tiles(key, image.shape)
        padded = pad_to(image, self.multiple, self.min_size)
        return self.tiled[key].record(self.sess, padded,
                                      self.norm_stats_size if tiles else 0)

    def translate(self, image, direction='AtoB', *, statistics=None):
        """The translation of one image, as sample.py writes it.

        Args:
          image: a PIL image of any mode, or a uint8 array [H, W] (grey) or
            [H, W, 3] (RGB).
          direction: 'AtoB', or 'BtoA' for CycleGAN.
          statistics: the normalization statistics to translate with (of
            :meth:`statistics`, e.g. of a video's first frame); None: the
            image's own.
        Returns:
          uint8 [H, W, C]: C the output channels (RGB for colorization).
        """
        return self.results(image, direction, reconstruct=False,
                            statistics=statistics)['translation']

    def results(self, image, direction='AtoB', *, reconstruct=True, statistics=None):
        """{'translation', 'reconstruction'?}: uint8 [H, W, C] images of one
        image (arguments as :meth:`translate`), as sample.py writes its
        _fake_ and _rec_ files; 'reconstruction' where the model has one
        (CycleGAN whose both generators were trained) and ``reconstruct``."""
        from cyclegan_tf.data import pipeline

        key = direction[0]
        self.fetches(key)  # an unknown direction fails here
        model_input = self._model_input(image, key)
        results = self(key, model_input, reconstruct=reconstruct, statistics=statistics)
        del model_input
        # By rows: a whole float temporary of an 8000x6000 image is 576 MB.
        return {name: np.concatenate([pipeline.to_uint8(value[row:row + 256])
                                      for row in range(0, len(value), 256)])
                for name, value in results.items()}

    def _model_input(self, image, key):
        """float32 [H, W, C] in [-1, 1]: the network's input of domain ``key``
        from a PIL image or a uint8 array, as training reads files."""
        from PIL import Image

        from cyclegan_tf.data import pipeline

        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim not in (2, 3):
                raise ValueError(f'an image array is uint8 [H, W] or [H, W, 3], got '
                                 f'{image.dtype} {list(image.shape)}')
            image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1
                                    else image)
        return self.sess.run(self.from_rgb[key], {self.rgb: pipeline.pil_uint8(image, 3)})


class PointSampler(_Restored):
    """The generator and discriminator of a toy GAN's run, restored from a
    checkpoint: :meth:`points` draws generated points and :meth:`figure`
    plots them over the decision surface, as sample.py writes them."""

    def __init__(self, cfg, checkpoint):
        self.cfg, self.checkpoint, self.step = cfg, checkpoint, runs.step_of(checkpoint)
        model_class = registry.of(cfg).model_class
        if registry.of(cfg).images:
            raise runs.RunError(f'a {cfg.model} run draws no points: it translates images')
        tf = session.graph_mode()
        tf1 = tf.compat.v1
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs, self.outputs = model_class.build_inference(cfg)
            variables = tf1.global_variables()
            saver = tf1.train.Saver(variables)
        self.graph.finalize()
        self.sess = tf1.Session(graph=self.graph, config=session.session_config(training=False))
        checkpoints.restore_checkpoint(self.sess, saver, variables, checkpoint)

    @classmethod
    def from_run(cls, run, *, checkpoint=None):
        """The PointSampler of the run folder ``run`` (its latest checkpoint,
        or the checkpoint prefix ``checkpoint``)."""
        return cls(runs.load_config(run), checkpoint or latest_checkpoint(run))

    def points(self, num=1000, seed=0):
        """``num`` generated points [num, 2] from the noise of ``seed``."""
        from cyclegan_tf.models import toy_gan

        return toy_gan.toy_samples(self.sess, self.cfg, self.inputs, self.outputs, num=num,
                                   seed=seed)

    def figure(self, num=1000, seed=0, title=''):
        """PNG bytes: ``num`` real and generated points (those of :meth:`points`)
        over the discriminator's decision surface."""
        from cyclegan_tf.models import toy_gan

        return toy_gan.toy_figure(self.sess, self.cfg, self.inputs, self.outputs, num=num,
                                  seed=seed, title=title)
