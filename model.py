"""The abstract Model: its contract, and what every model shares (the GAN
losses, the learning-rate schedule, one Adam optimizer per network).

Each model is a subclass in a file of its own under models/ (CycleGAN in
models/cycle_gan.py, pix2pix and colorization in models/pix2pix.py, the toy
GAN in models/toy_gan.py), found by name through registry.py. A model is
written for one device: data parallelism (--num_replicas, TF_CONFIG) and
loss scaling (--amp) wrap it from outside (running/replicas.py), through the
two arguments of :class:`Model` they replace: the ``schedule`` and the
``optimizers``.
"""

import abc
import math

import tensorflow as tf

from cyclegan_tf import modules
from cyclegan_tf.data import pipeline

tf1 = tf.compat.v1


# ---------------------------------------------------------------- losses


def gan_loss(logits, target_is_real, mode):
    """The GAN objective on discriminator logits, mean over the patch map.

    lsgan: (D(x) - target)^2; vanilla: cross-entropy of sigmoid(D(x)), on the
    logits so it stays finite for any logit; wgangp: -D(x) for real, D(x)
    for fake (the gradient penalty is :func:`gradient_penalty`).
    """
    if mode == 'lsgan':
        return tf.reduce_mean(tf.square(logits - (1.0 if target_is_real else 0.0)))
    if mode == 'vanilla':
        labels = tf.ones_like(logits) if target_is_real else tf.zeros_like(logits)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                      logits=logits))
    if mode == 'wgangp':
        return -tf.reduce_mean(logits) if target_is_real else tf.reduce_mean(logits)
    raise ValueError(f'unknown gan_mode {mode!r}')


def gradient_penalty(discriminator, real, fake, weight):
    """WGAN-GP (Gulrajani et al. 2017): weight * E[(|grad D(x_hat)|_2 - 1)^2]
    at random points x_hat on lines between real and fake images."""
    alpha = tf.random.uniform(tf.stack([tf.shape(real)[0], 1, 1, 1]))
    interpolated = real + alpha * (fake - real)
    grads = tf.gradients(discriminator(interpolated), [interpolated])[0]
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-16)
    return weight * tf.reduce_mean(tf.square(norms - 1.0))


def l1(a, b):
    return tf.reduce_mean(tf.abs(a - b))


# ------------------------------------------------------- learning rate


def lr_factor(epoch, cfg):
    """The learning rate of 0-based ``epoch``, relative to cfg.lr.

    linear: 1 for n_epochs epochs, then 1 - k / (n_epochs_decay + 1) in the
    k-th decay epoch, so the last epoch runs at lr / (n_epochs_decay + 1)
    (the official rule with its scheduler stepped at the end of each epoch);
    step: x0.1 every lr_decay_iters epochs; cosine: from 1 at the first epoch
    to 0 after the last, over all n_epochs + n_epochs_decay epochs (so every
    epoch trains at a positive rate).
    """
    if cfg.lr_policy == 'linear':
        return 1.0 - max(0, epoch + 1 - cfg.n_epochs) / float(cfg.n_epochs_decay + 1)
    if cfg.lr_policy == 'step':
        return 0.1 ** (epoch // cfg.lr_decay_iters)
    if cfg.lr_policy == 'cosine':
        epochs = cfg.n_epochs + cfg.n_epochs_decay
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))
    raise ValueError(f'unknown lr_policy {cfg.lr_policy!r}')


def learning_rate(epoch, cfg):
    """The schedule as a tensor of the epoch variable: a lookup in a table of
    :func:`lr_factor`, so graph and Python share one formula. Past the last
    epoch the rate stays at its final value (zero for linear)."""
    last = cfg.n_epochs + cfg.n_epochs_decay
    table = [cfg.lr * max(0.0, lr_factor(e, cfg)) for e in range(last)] + [0.0]
    if cfg.lr_policy != 'linear':
        table[-1] = table[-2] if last else cfg.lr
    index = tf.clip_by_value(epoch, 0, last)
    return tf.gather(tf.constant(table, tf.float32), index, name='learning_rate')


# ------------------------------------------------- schedule and optimizers


class Schedule:
    """The training clock of a model: ``global_step`` (iterations done),
    ``epoch`` (0-based, a variable saved with the checkpoints) and
    ``learning_rate``, a tensor of ``epoch`` (:func:`learning_rate`).
    Replicas of a model share one (running/replicas.py)."""

    def __init__(self, cfg):
        self.global_step = tf1.train.get_or_create_global_step()
        self.epoch = tf1.get_variable('epoch', [], tf.int64, trainable=False,
                                      initializer=tf1.zeros_initializer())
        with tf.name_scope('optimizers/'):
            self._new_epoch = tf1.placeholder(tf.int64, [], name='new_epoch')
            self._set_epoch = tf1.assign(self.epoch, self._new_epoch, name='set_epoch')
            self.learning_rate = learning_rate(self.epoch, cfg)

    def set_epoch(self, sess, epoch):
        """Moves the learning-rate schedule to 0-based ``epoch``."""
        sess.run(self._set_epoch, {self._new_epoch: epoch})


class TorchAdam(tf1.train.AdamOptimizer):
    """Adam as torch.optim.Adam (the official code's), epsilon added to
    sqrt(v_hat), the bias-corrected second moment:

        w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)

    tf.train.AdamOptimizer adds it to sqrt(v) before the correction (its
    "epsilon hat"), so it steps less where gradients are small (|g| near
    epsilon / sqrt(1 - beta2^t), 3e-7 at the first step). The same update
    with TensorFlow's fused kernel, its epsilon epsilon * sqrt(1 - beta2^t) of
    this step (beta2_power: beta2^t before _finish raises it); the same
    variables and slots, so checkpoints of either load."""

    def _prepare(self):
        super()._prepare()
        _, beta2_power = self._get_beta_accumulators()
        self._epsilon_t = tf.multiply(self._epsilon_t, tf.sqrt(1.0 - beta2_power),
                                      name='epsilon_torch')


class Optimizers(dict):
    """One Adam optimizer per network (:class:`TorchAdam`; a dict: network name
    -> its optimizer, ``Adam_<name>``), each restricted to its network's trainable variables,
    applying the gradients of a loss computed once for all the networks it
    trains (separate minimize calls would backpropagate once each).

    :meth:`gradients` and :meth:`apply` are where replicas and loss scaling
    change the update (running/replicas.py); here they are one device's."""

    def __init__(self, learning_rate, beta1):
        super().__init__()
        self.learning_rate, self.beta1 = learning_rate, beta1

    def minimize(self, loss, networks, *, after=()):
        """The update op of ``networks`` (modules.Network) on ``loss``, run
        after the ops in ``after`` and the networks' batch-norm updates."""
        group = '_'.join(network.name for network in networks)
        variables = [v for network in networks for v in network.variables]
        with tf.name_scope('optimizers/'):
            grads = self.gradients(loss, variables, group)
            missing = [v.name for v, g in zip(variables, grads) if g is None]
            if missing:
                raise ValueError(f'the loss does not depend on {missing[0]}')
            updates, start = [], 0
            for network in networks:
                if network.name not in self:
                    self[network.name] = TorchAdam(
                        self.learning_rate, self.beta1, name=f'Adam_{network.name}')
                count = len(network.variables)
                updates.append((network.name, list(zip(grads[start:start + count],
                                                       network.variables))))
                start += count
            dependencies = list(after) + [op for n in networks for op in n.update_ops]
            return self.apply(updates, dependencies, group)

    def gradients(self, loss, variables, group):
        """The gradients of ``loss`` for ``variables`` (None where it does not depend)."""
        return tf.gradients(loss, variables, name='gradients_' + group)

    def apply(self, updates, dependencies, group):
        """One op applying ``updates`` (network name -> (gradient, variable)
        pairs) with each network's optimizer, after ``dependencies``."""
        applied = []
        with tf.control_dependencies(dependencies):
            for name, pairs in updates:
                # Names its beta powers; absolute, so that an apply built
                # elsewhere (a loss-scaled one, in a cond) names them the same.
                with tf.name_scope(f'optimizers/Adam_{name}/'):
                    applied.append(self[name].apply_gradients(pairs))
        return tf.group(applied)


# --------------------------------------------------------------- Model


class Model(abc.ABC):
    """A trainable model, built once into the default graph, for one device.

    The constructor builds the whole training graph; a subclass implements
    ``_build()`` and there provides:

    - ``self.inputs``: dict batch key -> placeholder, under name scope
      ``inputs``; a batch is a dict of numpy arrays with those keys.
    - ``self.networks``: dict name -> :class:`modules.Network`, each under its
      own top-level variable scope of that name (:meth:`_add_network`).
    - ``self.losses``: dict name -> scalar tensor, under name scope ``losses``;
      each is logged as ``loss/<name>``.
    - one update per group of networks through :meth:`_minimize` (one Adam
      optimizer per network, restricted to its variables: ``self.optimizers``,
      :class:`Optimizers`, name -> optimizer; ``self.var_lists`` name -> its
      variables);
    - ``self.train_op``: one op running every update of one iteration in the
      model's order (documented by the subclass), then incrementing
      ``global_step`` once (:meth:`_count_step`);
    - ``self.visuals``: dict name -> image tensor in [-1, 1], and
      ``self.visual_rows``: how those names form a sample grid.

    The base class adds ``global_step``, ``epoch`` and ``learning_rate``
    (:class:`Schedule`) before ``_build``, and the scalar summaries after it
    (:meth:`scalars`), then checks that every trainable variable belongs to
    exactly one optimizer. Everything the model needs at train time is built
    here, so the caller can finalize the graph.

    Subclasses also implement ``build_inference(cfg, training)``: the
    networks sample.py and the export need, restorable from a training
    checkpoint, with their outputs named by role in the class constants
    ``TRANSLATIONS`` (input key -> the output translating it, as shown to
    people: RGB for colorization), ``RECONSTRUCTIONS`` (input key -> its
    cycle reconstruction) and ``GENERATORS`` (input key -> the network that
    translates it).

    What the training loop does for a model beyond its common steps comes
    from hooks with defaults for the image models: ``input_pipeline`` (the
    data: the image pipeline of data/pipeline.py), ``host_state()`` /
    ``load_host_state()`` (state outside the graph, saved with each
    checkpoint: CycleGAN's image pools; seeded by ``host_seed``) and
    ``epoch_report(sess)`` (metrics and figures at the end of each epoch:
    the toy GAN's discriminator accuracy and decision surface).

    Replicas and loss scaling (running/replicas.py) build one model per
    replica with a shared ``schedule`` and ``optimizers`` (whose gradients
    they scale, average and apply together) and a ``host_seed`` of its own;
    the subclass sees none of it. A model's host states saved with another
    number of replicas are regrouped by :meth:`regroup_host_states`.
    """

    TRANSLATIONS, RECONSTRUCTIONS, GENERATORS = {}, {}, {}

    def __init__(self, cfg, *, schedule=None, optimizers=None, host_seed=None):
        self.cfg = cfg
        tf1.get_default_graph().seed = cfg.seed
        self.schedule = Schedule(cfg) if schedule is None else schedule
        self.global_step, self.epoch = self.schedule.global_step, self.schedule.epoch
        self.learning_rate = self.schedule.learning_rate
        self.optimizers = (Optimizers(self.learning_rate, cfg.beta1) if optimizers is None
                           else optimizers)  # an empty mapping until _build fills it
        self.host_seed = (cfg.seed,) if host_seed is None else tuple(host_seed)
        self.networks, self.losses, self.var_lists = {}, {}, {}
        self.visuals, self.visual_rows = {}, []
        self._build()
        self._check_optimizers()
        self.summary_op = scalar_summary(self.scalars())

    @abc.abstractmethod
    def _build(self):
        """Builds inputs, networks, losses, optimizers and ``self.train_op``."""

    @classmethod
    @abc.abstractmethod
    def build_inference(cls, cfg, *, training=False):
        """Builds the generators for sampling into the default graph.

        Returns (inputs, outputs): dicts of placeholders (batch key ->
        [None, None, None, C]) and of output tensors in [-1, 1]. Variable
        names match the training graph, so a training checkpoint restores it.
        """

    @classmethod
    def inference_generators(cls, cfg):
        """{input key: the generator that translates it}: new networks in the
        default graph, as build_inference makes them, for inference.Translator
        to run tile by tile (evaluation/tiling.py). {} (the default): the
        model's images are translated whole."""
        return {}

    @classmethod
    def translation_of(cls, key, x, y):
        """The translation of input ``key`` shown to people (TRANSLATIONS[key])
        from a tile ``x`` of the input and the generator's output ``y`` for it:
        ``y`` by default (colorization: L and ab as RGB). Pixel by pixel."""
        return y

    @classmethod
    def input_pipeline(cls, cfg, root, layout):
        """The training data: an object with ``next_batch`` (dict of tensors,
        a new batch at each sess.run, keyed as ``self.inputs``) and
        ``steps_per_epoch``, built in the default graph. Image models read
        the dataset folder ``root``, of ``layout`` (their ``data`` in
        registry.py), with data/pipeline.py."""
        return pipeline.input_pipeline(cfg, cfg.phase, root=root, layout=layout,
                                       sizes=cls.training_sizes(cfg))

    @classmethod
    def input_sizes(cls, cfg):
        """(multiple, minimum): the heights and widths of build_inference's
        inputs must be multiples of ``multiple`` (4 for ResNets, 256 for
        unet_256) and at least ``minimum``; sample.py and the export pad
        images to them."""
        with tf.Graph().as_default():  # a throwaway network, for its attributes
            network = cls.generator(cfg)
            return network.multiple, network.min_size

    @classmethod
    def generator(cls, cfg):
        """A generator of the model (unbuilt), for its input sizes: by default
        modules.define_G's."""
        return modules.define_G(cfg, 'G')

    @classmethod
    def discriminator(cls, cfg):
        """A discriminator of the model (unbuilt), for its minimum input size:
        by default modules.define_D's."""
        return modules.define_D(cfg, 'D')

    @classmethod
    def training_sizes(cls, cfg):
        """(multiple, minimum) of the training images: :meth:`input_sizes`,
        at least the discriminator's minimum. The input pipeline resizes
        images of --preprocess none and scale_width to them."""
        multiple, minimum = cls.input_sizes(cfg)
        with tf.Graph().as_default():
            return multiple, max(minimum, cls.discriminator(cfg).min_size)

    def scalars(self):
        """The scalar summaries, tag -> scalar tensor: ``loss/<name>`` and ``lr``."""
        tags = {f'loss/{name}': loss for name, loss in self.losses.items()}
        tags['lr'] = self.learning_rate
        return tags

    def epoch_report(self, sess):
        """(metrics, images) at the end of an epoch: name -> float, logged as
        ``metric/<name>``, and name -> uint8 [H, W, 3], written to samples/ and
        TensorBoard. None by default."""
        return {}, {}

    def _image_inputs(self):
        """(real_A, real_B): the placeholders of a batch of image pairs,
        ``self.inputs`` 'A' and 'B', of input_nc and output_nc channels,
        crop_size square when the images are cropped."""
        cfg = self.cfg
        size = cfg.crop_size if 'crop' in cfg.preprocess else None
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, size, size, cfg.input_nc], name='real_A')
            real_B = tf1.placeholder(tf.float32, [None, size, size, cfg.output_nc], name='real_B')
        self.inputs = {'A': real_A, 'B': real_B}
        return real_A, real_B

    def _add_network(self, network):
        self.networks[network.name] = network
        return network

    def _minimize(self, loss, networks, *, after=()):
        """The update of ``networks`` on ``loss`` (:class:`Optimizers`), after
        the ops in ``after`` and the networks' batch-norm updates."""
        for network in networks:
            self.var_lists[network.name] = network.variables
        return self.optimizers.minimize(loss, networks, after=after)

    def _count_step(self, *, after):
        """Increments global_step once, after ``after``; returns the op that
        does, which is the iteration's ``train_op``."""
        with tf.name_scope('optimizers/'), tf.control_dependencies(after):
            return tf1.assign_add(self.global_step, 1, name='train_op').op

    def _check_optimizers(self):
        trainable = [v.name for v in tf1.trainable_variables()]
        owned = [v.name for variables in self.var_lists.values() for v in variables]
        if not owned or any(not v for v in self.var_lists.values()):
            raise AssertionError('every optimizer needs a non-empty var_list')
        if len(owned) != len(set(owned)) or set(owned) != set(trainable):
            raise AssertionError('every trainable variable must belong to exactly one optimizer')

    def set_epoch(self, sess, epoch):
        """Moves the learning-rate schedule to 0-based ``epoch``."""
        self.schedule.set_epoch(sess, epoch)

    def feed_dict(self, batch):
        return {placeholder: batch[key] for key, placeholder in self.inputs.items()}

    def train_step(self, sess, batch, *, summaries=False, visuals=False, options=None,
                   run_metadata=None):
        """Runs one iteration on ``batch``: one session run.

        Returns a dict: 'losses' (name -> float, before this step's updates),
        and, when asked, 'summary' (serialized scalar summaries) and 'visuals'
        (name -> array in [-1, 1], the images this step trained on).
        """
        fetches = {'train': self.train_op, 'losses': self.losses}
        if summaries:
            fetches['summary'] = self.summary_op
        if visuals:
            fetches['visuals'] = self.visuals
        result = sess.run(fetches, self.feed_dict(batch), options=options,
                          run_metadata=run_metadata)
        result.pop('train')
        result['losses'] = {k: float(v) for k, v in result['losses'].items()}
        return result

    def host_state(self):
        """Training state kept outside the graph: a dict of numpy arrays."""
        return {}

    def load_host_state(self, state):
        """Restores what :meth:`host_state` returned ({}: nothing saved)."""

    @classmethod
    def regroup_host_states(cls, states, count):
        """``count`` host states from the list ``states`` saved by a run of
        len(states) replicas: by default the r-th if saved, else {}."""
        return [states[r] if r < len(states) else {} for r in range(count)]


def scalar_summary(tags):
    """One serialized-summary op of the scalars ``tags`` (tag -> tensor),
    under name scope ``summaries``."""
    with tf.name_scope('summaries/'):
        return tf1.summary.merge(
            [tf.raw_ops.ScalarSummary(tags=tag, values=value, name=tag.rpartition('/')[2])
             for tag, value in tags.items()], name='scalars')
