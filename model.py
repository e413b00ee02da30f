"""Models: the abstract Model and its contract, CycleGAN, pix2pix (and its
colorization variant) and the toy 2-D GAN.

Names in the code and in the CycleGAN paper (Zhu et al. 2017, fig. 3):

    code    paper   what
    G_A     G       generator A -> B (X -> Y)
    G_B     F       generator B -> A (Y -> X)
    D_A     D_Y     discriminator of domain B: real_B vs fake_B = G_A(real_A)
    D_B     D_X     discriminator of domain A: real_A vs fake_A = G_B(real_B)
    rec_A   F(G(x)) cycle A -> B -> A; rec_B = G(F(y))
    idt_A   G(y)    identity of G_A on B; idt_B = F(x)

These are the official PyTorch implementation's names, so its papers,
issues and flags read the same here.
"""

import abc
import contextlib
import io
import json
import math

import numpy as np
import tensorflow as tf
from PIL import Image

import data
import distribute
import modules
import registry

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


# ---------------------------------------------------------- image pool


class ImagePool:
    """A history of generated images (Shrivastava et al. 2017), with the
    reference semantics: until full, store each image and return it; then
    for each image, with probability 1/2 return a random stored image and
    store the new one in its place, else return the new one. Size 0 returns
    its input. State (images and random generator) can be saved and loaded,
    so a resumed run continues with the same history.
    """

    def __init__(self, size, seed=0):
        self.size = size
        self.images = []
        self.rng = np.random.default_rng(seed)

    def query(self, images):
        """images: [N, H, W, C] array -> [N, H, W, C] array."""
        if self.size == 0:
            return images
        result = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.copy())
                result.append(image)
            elif self.rng.uniform() > 0.5:
                index = int(self.rng.integers(self.size))
                result.append(self.images[index])
                self.images[index] = image.copy()
            else:
                result.append(image)
        return np.stack(result).astype(images.dtype, copy=False)

    def state(self):
        """Numpy arrays that :meth:`load_state` accepts (np.savez-able):
        'images' stacked, or for images of different sizes (--preprocess
        none or scale_width) one array each, 'image_0', 'image_1', ..."""
        state = {'rng': np.array(json.dumps(self.rng.bit_generator.state))}
        if len({image.shape for image in self.images}) > 1:
            state.update({f'image_{i}': image for i, image in enumerate(self.images)})
        else:
            state['images'] = np.stack(self.images) if self.images else np.zeros([0])
        return state

    def load_state(self, state):
        """Restores :meth:`state`'s arrays. An empty state keeps the pool as
        it is (a replica added since the save); an empty 'rng' keeps this
        pool's generator (a pool regrouped for another number of replicas);
        a state without 'rng' raises KeyError (it is not a pool's)."""
        if not state:
            return
        rng = str(state['rng'])
        if rng:  # first: a bad state leaves the pool as it was
            self.rng.bit_generator.state = json.loads(rng)
        if 'images' in state:
            images = list(state['images'])
        else:  # a pool of images of different sizes: one array each
            count = len([key for key in state if key.startswith('image_')])
            images = [state[f'image_{i}'] for i in range(count)]
        self.images = [np.asarray(image) for image in images][:self.size]

    def as_op(self, images, name):
        """The pool as a graph op: one query per session run that evaluates it."""
        pooled = tf1.numpy_function(self.query, [images], images.dtype, stateful=True, name=name)
        pooled.set_shape(images.shape)
        return pooled


# --------------------------------------------------------- loss display


class LossAverager:
    """Exponential moving averages of named losses, for a steadier display.

    ``update(losses)`` takes one iteration's losses (name -> float, e.g.
    ``train_step(...)['losses']``) and returns the averages so far. Each
    average is debiased as Adam's moments: after values x_1 ... x_n it is
    sum_k (1 - decay) decay^(n - k) x_k / (1 - decay^n), so the first value
    shows as it is and a name first seen late starts afresh. decay 0 shows
    the last values; 0.98 averages over roughly the last 50 iterations.
    Plain Python, no graph: the same for every model.
    """

    def __init__(self, decay=0.98):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'decay must be in [0, 1), got {decay}')
        self.decay = decay
        self._sums, self._counts = {}, {}

    def update(self, losses):
        """Adds one value per name; returns :attr:`averages`."""
        for name, value in losses.items():
            self._sums[name] = (self.decay * self._sums.get(name, 0.0)
                                + (1.0 - self.decay) * float(value))
            self._counts[name] = self._counts.get(name, 0) + 1
        return self.averages

    @property
    def averages(self):
        """name -> the debiased moving average of its values so far."""
        return {name: total / (1.0 - self.decay ** self._counts[name])
                for name, total in self._sums.items()}

    def reset(self):
        self._sums, self._counts = {}, {}


# --------------------------------------------------------------- Model


class Model(abc.ABC):
    """A trainable model, built once into the default graph.

    The constructor builds the whole training graph; a subclass implements
    ``_build()`` and there provides:

    - ``self.inputs``: dict batch key -> placeholder, under name scope
      ``inputs``; a batch is a dict of numpy arrays with those keys.
    - ``self.networks``: dict name -> :class:`modules.Network`, each under its
      own top-level variable scope of that name.
    - ``self.losses``: dict name -> scalar tensor, under name scope ``losses``;
      each is logged as ``loss/<name>``.
    - one optimizer per network through :meth:`_minimize`, which keeps
      ``self.optimizers`` (name -> tf optimizer, ``Adam_<name>``) and
      ``self.var_lists`` (name -> the variables it updates: exactly its
      network's trainable variables);
    - ``self.train_op``: one op running every update of one iteration in the
      model's order (documented by the subclass), then incrementing
      ``global_step`` once;
    - ``self.visuals``: dict name -> image tensor in [-1, 1], and
      ``self.visual_rows``: how those names form a sample grid.

    The base class adds ``global_step``, the ``epoch`` variable and the
    ``learning_rate`` tensor (a function of ``epoch``) before ``_build``, and
    the scalar summaries after it, then checks that every trainable variable
    belongs to exactly one optimizer. Everything the model needs at train
    time is built here, so the caller can finalize the graph.

    Subclasses also implement ``build_inference(cfg, training)``: the
    networks sample.py and the export need, restorable from a training
    checkpoint, with their outputs named by role in the class constants
    ``TRANSLATIONS`` (input key -> the output translating it, as shown to
    people: RGB for colorization), ``RECONSTRUCTIONS`` (input key -> its
    cycle reconstruction) and ``GENERATORS`` (input key -> the network that
    translates it).

    What the training loop does for a model beyond its common steps comes
    from hooks with defaults for the image models: ``input_pipeline`` (the
    data: data.py's image pipeline), ``host_state()`` / ``load_host_state()``
    (state outside the graph, saved with each checkpoint: CycleGAN's image
    pools) and ``epoch_report(sess)`` (metrics and figures at the end of each
    epoch: the toy GAN's discriminator accuracy and decision surface).
    A model is found by name through its entry in registry.py.

    ``loss_scaling`` (--amp on a GPU; :func:`create` decides) gives each
    :meth:`_minimize` a dynamic loss scale (distribute.py): float16
    gradients neither underflow nor, when they overflow, reach the weights.

    Built inside a tf.distribute strategy's scope (train.py's --num_replicas
    and TF_CONFIG), ``_build`` runs once per replica on a view of the model
    (distribute.build_replicas): ``replica`` is the view's index,
    ``replicas`` the local views, ``num_replicas`` the count in sync; host
    state is then per replica: subclasses implement ``replica_host_state``,
    ``load_replica_host_state`` and, where a replica count can change on
    resume, ``regroup_host_states``.
    """

    TRANSLATIONS, RECONSTRUCTIONS, GENERATORS = {}, {}, {}
    replica, replicas, num_replicas = 0, (), 1  # one device (see distribute.py)

    def __init__(self, cfg, *, loss_scaling=False):
        self.cfg, self.loss_scaling, self.loss_scales = cfg, loss_scaling, {}
        tf1.get_default_graph().seed = cfg.seed
        self.networks, self.losses, self.optimizers, self.var_lists = {}, {}, {}, {}
        self.visuals, self.visual_rows = {}, []
        self.global_step = tf1.train.get_or_create_global_step()
        self.epoch = tf1.get_variable('epoch', [], tf.int64, trainable=False,
                                      initializer=tf1.zeros_initializer())
        with tf.name_scope('optimizers/'):
            self._new_epoch = tf1.placeholder(tf.int64, [], name='new_epoch')
            self._set_epoch = tf1.assign(self.epoch, self._new_epoch, name='set_epoch')
            self.learning_rate = learning_rate(self.epoch, cfg)
        if tf.distribute.has_strategy():  # data parallel: _build on each replica
            distribute.build_replicas(self)
        else:
            self._build()
        self._check_optimizers()
        with tf.name_scope('summaries/'):
            scalars = [tf.raw_ops.ScalarSummary(tags=f'loss/{name}', values=loss, name=name)
                       for name, loss in self.losses.items()]
            scalars.append(tf.raw_ops.ScalarSummary(tags='lr', values=self.learning_rate,
                                                    name='lr'))
            self.summary_op = tf1.summary.merge(scalars, name='scalars')

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
    def input_pipeline(cls, cfg, root):
        """The training data: an object with ``next_batch`` (dict of tensors,
        a new batch at each sess.run, keyed as ``self.inputs``) and
        ``steps_per_epoch``, built in the default graph. Image models read
        the dataset folder ``root`` with data.py's pipeline."""
        return data.input_pipeline(cfg, cfg.phase, root=root, sizes=cls.training_sizes(cfg))

    @classmethod
    def input_sizes(cls, cfg):
        """(multiple, minimum): the heights and widths of build_inference's
        inputs must be multiples of ``multiple`` (4 for ResNets, 256 for
        unet_256) and at least ``minimum``; sample.py and the export pad
        images to them."""
        with tf.Graph().as_default():  # a throwaway network, for its attributes
            network = modules.define_G(cfg, 'G')
            return network.multiple, network.min_size

    @classmethod
    def training_sizes(cls, cfg):
        """(multiple, minimum) of the training images: :meth:`input_sizes`,
        at least the discriminator's minimum. The input pipeline resizes
        images of --preprocess none and scale_width to them."""
        multiple, minimum = cls.input_sizes(cfg)
        with tf.Graph().as_default():
            return multiple, max(minimum, modules.define_D(cfg, 'D').min_size)

    def epoch_report(self, sess):
        """(metrics, images) at the end of an epoch: name -> float, logged as
        ``metric/<name>``, and name -> uint8 [H, W, 3], written to samples/ and
        TensorBoard. None by default."""
        return {}, {}

    def _add_network(self, network):
        self.networks[network.name] = network
        return network

    def _minimize(self, loss, networks, *, after=()):
        """One Adam optimizer per network, each restricted to its network's
        variables, applying the gradients of ``loss`` computed once for all
        of them (separate minimize calls would backpropagate once each).
        The updates run after the ops in ``after``, and after the networks'
        batch-norm moving-average updates. Returns the grouped update op.

        With ``loss_scaling`` (--amp on a GPU) the loss is multiplied by a
        dynamic loss scale of these networks before backpropagation and the
        gradients divided by it after (:func:`distribute.scaled_gradients`):
        float16 gradients then neither underflow nor, when a step does
        overflow, corrupt the weights: that step's updates are skipped."""
        var_lists = [network.variables for network in networks]
        group = '_'.join(network.name for network in networks)
        with tf.name_scope('optimizers/'):
            flat = [v for variables in var_lists for v in variables]
            # With replicas, each one's share: the optimizers sum the gradients.
            loss = distribute.replica_share(loss)
            scale = self._loss_scale(group) if self.loss_scaling else None
            grads = distribute.scaled_gradients(loss, flat, scale, name='gradients_' + group)
            missing = [v.name for v, g in zip(flat, grads) if g is None]
            if missing:
                raise ValueError(f'the loss does not depend on {missing[0]}')
            for network, variables in zip(networks, var_lists):
                if network.name not in self.optimizers:  # one per network, for all replicas
                    self.optimizers[network.name] = tf1.train.AdamOptimizer(
                        self.learning_rate, self.cfg.beta1, name=f'Adam_{network.name}')
                self.var_lists[network.name] = variables
            updates = [op for network in networks for op in network.update_ops]

            def apply(grads, dependencies):
                applied, start = [], 0
                with tf.control_dependencies(dependencies):
                    for network, variables in zip(networks, var_lists):
                        pairs = list(zip(grads[start:start + len(variables)], variables))
                        start += len(variables)
                        # Names its beta powers; absolute, as a loss-scaled
                        # apply runs in a branch of a cond, a graph of its own.
                        with tf.name_scope(f'optimizers/Adam_{network.name}/'):
                            applied.append(self.optimizers[network.name].apply_gradients(pairs))
                return tf.group(applied)

            if scale is None:
                return apply(grads, list(after) + updates)
            return distribute.apply_if_finite(scale, apply, grads, list(after) + updates)

    def _loss_scale(self, group):
        """The dynamic loss scale of the networks ``group``, created once
        (the replicas share it), saved with the checkpoints but optional in
        them (runtime.OPTIONAL_VARIABLES): a run without --amp resumes with it."""
        if group not in self.loss_scales:
            with tf.name_scope(f'optimizers/loss_scale_{group}/'):  # any replica's
                self.loss_scales[group] = distribute.dynamic_loss_scale()
        return self.loss_scales[group]

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
        sess.run(self._set_epoch, {self._new_epoch: epoch})

    def feed_dict(self, batch):
        if self.replicas:  # each local replica its slice of the global batch
            return distribute.feed_dict(self.replicas, batch)
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
        """Training state kept outside the graph, as a dict of numpy arrays:
        :meth:`replica_host_state`, of each local replica with several
        (distribute.gather_host_states)."""
        if self.replicas:
            return distribute.gather_host_states(
                {view.replica: view.replica_host_state() for view in self.replicas})
        return self.replica_host_state()

    def load_host_state(self, state):
        """Restores what :meth:`host_state` returned, saved with any replica
        count: regrouped to this model's (:meth:`regroup_host_states`)."""
        states = self.regroup_host_states(distribute.split_host_states(state),
                                          self.num_replicas)
        for view in self.replicas or [self]:
            view.load_replica_host_state(states[view.replica])

    def replica_host_state(self):
        """This replica's state outside the graph: a dict of numpy arrays."""
        return {}

    def load_replica_host_state(self, state):
        """Restores what :meth:`replica_host_state` returned ({}: nothing saved)."""

    @classmethod
    def regroup_host_states(cls, states, count):
        """``count`` replica states from the list ``states`` saved by a run
        with len(states) replicas: by default replica r's if saved, else {}."""
        return [states[r] if r < len(states) else {} for r in range(count)]


# ------------------------------------------------------------ CycleGAN


class CycleGAN(Model):
    """CycleGAN: two generators, two discriminators, adversarial + cycle +
    identity losses, discriminators trained on a history of fakes.

    One iteration, in one session run, in the official order: forward
    (fake_B, rec_A, fake_A, rec_B, idt_A, idt_B); update G_A and G_B on
    L_G = L_GAN(G_A) + L_GAN(G_B) + lambda_A L_cyc_A + lambda_B L_cyc_B
    + identity terms, judged by the discriminators before their update; then
    update D_A and D_B on the same iteration's fakes (through the pools, no
    second generator pass) with 0.5 (L_real + L_fake); then global_step += 1.
    """

    TRANSLATIONS = {'A': 'fake_B', 'B': 'fake_A'}
    RECONSTRUCTIONS = {'A': 'rec_A', 'B': 'rec_B'}
    GENERATORS = {'A': 'G_A', 'B': 'G_B'}

    def _build(self):
        cfg = self.cfg
        size = cfg.crop_size if 'crop' in cfg.preprocess else None
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, size, size, cfg.input_nc], name='real_A')
            real_B = tf1.placeholder(tf.float32, [None, size, size, cfg.output_nc], name='real_B')
        self.inputs = {'A': real_A, 'B': real_B}

        G_A, G_B = self._generators(cfg)
        G_A, G_B = self._add_network(G_A), self._add_network(G_B)
        D_A = self._add_network(modules.define_D(cfg, 'D_A', input_nc=cfg.output_nc))
        D_B = self._add_network(modules.define_D(cfg, 'D_B', input_nc=cfg.input_nc))

        fake_B = tf.identity(G_A(real_A), name='fake_B')
        rec_A = tf.identity(G_B(fake_B), name='rec_A')
        fake_A = tf.identity(G_B(real_B), name='fake_A')
        rec_B = tf.identity(G_A(fake_A), name='rec_B')
        self.visuals = dict(real_A=real_A, fake_B=fake_B, rec_A=rec_A,
                            real_B=real_B, fake_A=fake_A, rec_B=rec_B)
        self.visual_rows = [['real_A', 'fake_B', 'rec_A'], ['real_B', 'fake_A', 'rec_B']]
        identity = cfg.lambda_identity > 0
        if identity:
            if cfg.input_nc != cfg.output_nc:
                raise ValueError('the identity loss needs input_nc == output_nc; '
                                 'set --lambda_identity 0')
            idt_A = tf.identity(G_A(real_B), name='idt_A')
            idt_B = tf.identity(G_B(real_A), name='idt_B')
            self.visuals.update(idt_B=idt_B, idt_A=idt_A)
            self.visual_rows[0].append('idt_B')
            self.visual_rows[1].append('idt_A')

        losses = self.losses
        with tf.name_scope('losses/'):
            losses['G_A'] = gan_loss(D_A(fake_B), True, cfg.gan_mode)
            losses['G_B'] = gan_loss(D_B(fake_A), True, cfg.gan_mode)
            losses['cycle_A'] = cfg.lambda_A * l1(rec_A, real_A)
            losses['cycle_B'] = cfg.lambda_B * l1(rec_B, real_B)
            if identity:
                losses['idt_A'] = cfg.lambda_B * cfg.lambda_identity * l1(idt_A, real_B)
                losses['idt_B'] = cfg.lambda_A * cfg.lambda_identity * l1(idt_B, real_A)
            loss_G = tf.add_n(list(losses.values()), name='G')

        with tf.name_scope('image_pool/'):
            # Each replica its own pools (distribute.py), with its own generators.
            seeds = [[cfg.seed + k, self.replica] if self.replica else cfg.seed + k
                     for k in (1, 2)]
            self.pools = {'A': ImagePool(cfg.pool_size, seeds[0]),
                          'B': ImagePool(cfg.pool_size, seeds[1])}
            # The discriminators see this iteration's fakes, never recomputed.
            pool_fake_B = self.pools['B'].as_op(tf.stop_gradient(fake_B), 'fake_B')
            pool_fake_A = self.pools['A'].as_op(tf.stop_gradient(fake_A), 'fake_A')

        with tf.name_scope('losses/'):
            losses['D_A'] = self._discriminator_loss(D_A, real_B, pool_fake_B)
            losses['D_B'] = self._discriminator_loss(D_B, real_A, pool_fake_A)

        train_G = self._minimize(loss_G, [G_A, G_B])
        with tf.name_scope('losses/'):
            loss_D = tf.add(losses['D_A'], losses['D_B'], name='D')
        train_D = self._minimize(loss_D, [D_A, D_B], after=[train_G])
        self.train_op = self._count_step(after=[train_D])

    def _discriminator_loss(self, D, real, fake):
        cfg = self.cfg
        loss = 0.5 * (gan_loss(D(real), True, cfg.gan_mode) +
                      gan_loss(D(fake), False, cfg.gan_mode))
        if cfg.gan_mode == 'wgangp':
            # The official code defines the penalty but never calls it in
            # CycleGAN; WGAN without it is unconstrained, so we apply it.
            loss += gradient_penalty(D, real, fake, cfg.lambda_gp)
        return loss

    @staticmethod
    def _generators(cfg):
        G_A = modules.define_G(cfg, 'G_A', input_nc=cfg.input_nc, output_nc=cfg.output_nc)
        G_B = modules.define_G(cfg, 'G_B', input_nc=cfg.output_nc, output_nc=cfg.input_nc)
        return G_A, G_B

    @classmethod
    def build_inference(cls, cfg, *, training=False):
        """A -> fake_B -> rec_A and B -> fake_A -> rec_B; feed A, B or both."""
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, None, None, cfg.input_nc], name='real_A')
            real_B = tf1.placeholder(tf.float32, [None, None, None, cfg.output_nc], name='real_B')
        G_A, G_B = cls._generators(cfg)
        fake_B = tf.identity(G_A(real_A, training=training), name='fake_B')
        fake_A = tf.identity(G_B(real_B, training=training), name='fake_A')
        outputs = dict(fake_B=fake_B, rec_A=tf.identity(G_B(fake_B, training=training), 'rec_A'),
                       fake_A=fake_A, rec_B=tf.identity(G_A(fake_A, training=training), 'rec_B'))
        return {'A': real_A, 'B': real_B}, outputs

    def replica_host_state(self):
        return {f'pool_{domain}/{key}': value for domain, pool in self.pools.items()
                for key, value in pool.state().items()}

    def load_replica_host_state(self, state):
        for domain, pool in self.pools.items():
            prefix = f'pool_{domain}/'
            pool.load_state({k[len(prefix):]: v for k, v in state.items()
                             if k.startswith(prefix)})

    @classmethod
    def regroup_host_states(cls, states, count):
        """Pools saved by another number of replicas: each domain's images
        of all of them, taken in turn from each, dealt out in turn to the
        ``count`` replicas (each keeps at most its pool size); a replica that
        was saved keeps its random generator."""
        if len(states) == count:
            return states
        regrouped = [{} for _ in range(count)]
        for domain in ('A', 'B'):
            key = f'pool_{domain}/'
            pools = [list(s[key + 'images']) if len(s.get(key + 'images', ())) else []
                     for s in states]
            images = [pool[i] for i in range(max(map(len, pools), default=0))
                      for pool in pools if i < len(pool)]
            for r, state in enumerate(regrouped):
                mine = images[r::count]
                state[key + 'images'] = np.stack(mine) if mine else np.zeros([0])
                saved = r < len(states) and key + 'rng' in states[r]
                state[key + 'rng'] = states[r][key + 'rng'] if saved else np.array('')
        return regrouped


# ------------------------------------------------------------- pix2pix


class Pix2Pix(Model):
    """pix2pix (Isola et al. 2017): a U-Net generator G and a conditional
    PatchGAN D that judges (input, output) pairs concatenated on channels.

    Names: real_A is the paper's x (the input), real_B its y (the target),
    fake_B = G(x); G, D and the losses G_GAN, G_L1, D_real, D_fake are the
    official netG, netD and loss names (G_L1 includes lambda_L1).

    One iteration, in one session run, in the official order
    (Pix2PixModel.optimize_parameters): forward fake_B = G(real_A); update D
    on 0.5 (L(D(A, B), real) + L(D(A, fake_B), fake)) with fake_B held
    constant; update G on L_GAN(D(A, fake_B), real) + lambda_L1 |fake_B -
    real_B|_1, judged by the *updated* D (the official steps optimizer_D
    before backward_G): D's third call is built under a control dependency on
    the D update, so it reads D's variables after that update (resource
    variables are read where they are used); then global_step += 1. Hence
    fetching losses['G_GAN'] runs the D update: fetch it with the train op.
    ``self.updates`` holds the two update ops, 'D' and 'G'.

    No image pool (the official pool_size is 0 for pix2pix). gan_mode wgangp
    adds the gradient penalty as loss 'D_gp' (the official pix2pix omits it).
    """

    TRANSLATIONS = {'A': 'fake_B'}
    GENERATORS = {'A': 'G'}

    def _build(self):
        cfg = self.cfg
        size = cfg.crop_size if 'crop' in cfg.preprocess else None
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, size, size, cfg.input_nc], name='real_A')
            real_B = tf1.placeholder(tf.float32, [None, size, size, cfg.output_nc], name='real_B')
        self.inputs = {'A': real_A, 'B': real_B}
        G = self._add_network(self._generator(cfg))
        D = self._add_network(modules.define_D(cfg, 'D', input_nc=cfg.input_nc + cfg.output_nc))

        fake_B = tf.identity(G(real_A), name='fake_B')
        self._set_visuals(real_A, fake_B, real_B)
        real_AB = tf.concat([real_A, real_B], -1, name='real_AB')
        fake_AB = tf.concat([real_A, fake_B], -1, name='fake_AB')

        mode, losses = cfg.gan_mode, {}
        with tf.name_scope('losses/'):
            detached_AB = tf.stop_gradient(fake_AB)
            losses['D_real'] = gan_loss(D(real_AB), True, mode)
            losses['D_fake'] = gan_loss(D(detached_AB), False, mode)
            loss_D = 0.5 * (losses['D_real'] + losses['D_fake'])
            if mode == 'wgangp':
                losses['D_gp'] = gradient_penalty(D, real_AB, detached_AB, cfg.lambda_gp)
                loss_D += losses['D_gp']
            loss_D = tf.identity(loss_D, name='D')
        train_D = self._minimize(loss_D, [D])

        seen = len(D.update_ops)
        with tf.name_scope('losses/'):
            with tf.control_dependencies([train_D]):  # G is judged by the updated D
                losses['G_GAN'] = gan_loss(D(fake_AB), True, mode)
            losses['G_L1'] = cfg.lambda_L1 * l1(fake_B, real_B)
            loss_G = tf.add(losses['G_GAN'], losses['G_L1'], name='G')
        train_G = self._minimize(loss_G, [G], after=[train_D])
        # PyTorch's batch norm updates its running averages at every forward
        # pass, this third call of D included (D never uses them: it only trains).
        self.train_op = self._count_step(after=[train_G] + D.update_ops[seen:])
        self.updates = {'D': train_D, 'G': train_G}
        order = ('G_GAN', 'G_L1', 'D_real', 'D_fake', 'D_gp')  # the official display order
        self.losses.update((name, losses[name]) for name in order if name in losses)

    def _set_visuals(self, real_A, fake_B, real_B):
        self.visuals = dict(real_A=real_A, fake_B=fake_B, real_B=real_B)
        self.visual_rows = [['real_A', 'fake_B', 'real_B']]

    @staticmethod
    def _generator(cfg):
        return modules.define_G(cfg, 'G')

    @classmethod
    def build_inference(cls, cfg, *, training=False):
        """real_A -> fake_B; inputs {'A'}, outputs {'fake_B'}.

        ``training=True`` runs G as in training, with dropout and batch
        statistics: the paper's choice at test time and the official test.py's
        default (its --eval switches to the moving averages), so sample.py
        passes ``training=not eval``.
        """
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, None, None, cfg.input_nc], name='real_A')
        fake_B = tf.identity(cls._generator(cfg)(real_A, training=training), name='fake_B')
        return {'A': real_A}, cls._inference_outputs(real_A, fake_B)

    @staticmethod
    def _inference_outputs(real_A, fake_B):
        return {'fake_B': fake_B}


def colorization_rgb(lightness, ab):
    """RGB [N, H, W, 3] in [-1, 1] of the colorization model's normalized
    ``lightness`` (L / 50 - 1, [N, H, W, 1]) and ``ab`` (ab / 110, [N, H, W, 2]):
    the graph twin of data.colorization_to_rgb."""
    lab = tf.concat([(lightness + 1.0) * 50.0, ab * 110.0], -1)
    return data.tf_lab_to_rgb(lab) * 2.0 - 1.0


class Colorization(Pix2Pix):
    """pix2pix from lightness to colour, as the official colorization model:
    real_A is the L channel of CIE Lab as L / 50 - 1 (one channel), real_B and
    fake_B the a and b channels as ab / 110 (two channels); the data layer
    supplies them so (data.py, colorization layout).

    The visuals are RGB in [-1, 1], converted in the graph, so sample grids
    need nothing special: real_A (the L channel shown as grey, as the
    official tensor2im shows one channel), fake_B_rgb (L with the generated
    ab) and real_B_rgb (the original photo). build_inference returns fake_B
    (ab) and fake_B_rgb, the translation shown.
    """

    TRANSLATIONS = {'A': 'fake_B_rgb'}

    @staticmethod
    def _generator(cfg):
        if (cfg.input_nc, cfg.output_nc) != (1, 2):
            raise ValueError(f'colorization translates L to ab: it needs input_nc=1 and '
                             f'output_nc=2, got {cfg.input_nc} and {cfg.output_nc}')
        return modules.define_G(cfg, 'G')

    def _set_visuals(self, real_A, fake_B, real_B):
        with tf.name_scope('visuals/'):
            self.visuals = dict(
                real_A=tf.tile(real_A, [1, 1, 1, 3], name='real_A'),
                fake_B_rgb=tf.identity(colorization_rgb(real_A, fake_B), name='fake_B_rgb'),
                real_B_rgb=tf.identity(colorization_rgb(real_A, real_B), name='real_B_rgb'))
        self.visual_rows = [['real_A', 'fake_B_rgb', 'real_B_rgb']]

    @staticmethod
    def _inference_outputs(real_A, fake_B):
        return {'fake_B': fake_B,
                'fake_B_rgb': tf.identity(colorization_rgb(real_A, fake_B), name='fake_B_rgb')}


# ------------------------------------------------------------- toy GAN


class ToyTarget:
    """The toy GAN's target in the plane: the Gaussian N(mean, cov), or, with
    ``modes`` > 0, that many equally likely Gaussians of std ``mode_std``
    evenly spaced on a circle of ``radius`` around ``mean``.

    ``mean`` and ``cov`` are the true moments of the distribution (of the
    mixture, for a ring).
    """

    def __init__(self, mean, cov, *, modes=0, radius=2.0, mode_std=0.1):
        self.center = np.asarray(mean, np.float64)
        self.modes, self.mode_std = modes, mode_std
        if modes:
            angles = 2.0 * np.pi * np.arange(modes) / modes
            self.offsets = radius * np.stack([np.cos(angles), np.sin(angles)], -1)
            centred = self.offsets - self.offsets.mean(0)
            self.mean = self.center + self.offsets.mean(0)
            self.cov = mode_std ** 2 * np.eye(2) + centred.T @ centred / modes
        else:
            self.mean, self.cov = self.center, np.asarray(cov, np.float64)
            self._cholesky = np.linalg.cholesky(self.cov)

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.target_mean, cfg.target_cov, modes=cfg.toy_modes,
                   radius=cfg.toy_radius, mode_std=cfg.toy_mode_std)

    def sample(self, rng, n):
        """``n`` points, float32 [n, 2], drawn with the numpy Generator ``rng``."""
        normal = rng.standard_normal([n, 2])
        if self.modes:
            points = (self.center + self.offsets[rng.integers(self.modes, size=n)]
                      + self.mode_std * normal)
        else:
            points = self.mean + normal @ self._cholesky.T
        return points.astype(np.float32)


def toy_noise(rng, n, noise_dim):
    """The generator's input: float32 [n, noise_dim] from N(0, I)."""
    return rng.standard_normal([n, noise_dim]).astype(np.float32)


class ToyPipeline:
    """The toy GAN's data, with the interface of data.InputPipeline.

    ``next_batch``: dict of tensors, a fresh batch at each sess.run: 'real'
    [batch_size, 2] target samples and 'z' [batch_size, noise_dim] noise,
    drawn by a numpy generator seeded with cfg.seed (through a numpy_function
    built in the default graph). ``steps_per_epoch``: cfg.steps_per_epoch.
    :meth:`sample_batch` draws the same kind of batch without a session.
    """

    def __init__(self, cfg):
        self.cfg, self.target = cfg, ToyTarget.from_config(cfg)
        self.rng = np.random.default_rng(cfg.seed)
        self.steps_per_epoch = cfg.steps_per_epoch

        def sample():
            batch = self.sample_batch()
            return batch['real'], batch['z']

        with tf.name_scope('toy_data/'):
            real, z = tf1.numpy_function(sample, [], [tf.float32, tf.float32], stateful=True,
                                         name='sample_batch')
        real.set_shape([cfg.batch_size, 2])
        z.set_shape([cfg.batch_size, cfg.noise_dim])
        self.next_batch = {'real': real, 'z': z}

    def sample_batch(self, n=None):
        """A batch dict of numpy arrays, 'real' and 'z', of ``n`` (default
        batch_size) rows, from this pipeline's generator."""
        n = n or self.cfg.batch_size
        return {'real': self.target.sample(self.rng, n),
                'z': toy_noise(self.rng, n, self.cfg.noise_dim)}


def toy_samples(sess, cfg, inputs, outputs, *, num=1000, seed=0):
    """``num`` generated points [num, 2] from noise drawn with ``seed``;
    ``inputs`` and ``outputs`` as ToyGAN.build_inference returns them (or a
    ToyGAN's ``inputs`` and ``outputs``)."""
    rng = np.random.default_rng(seed)
    return sess.run(outputs['fake'], {inputs['z']: toy_noise(rng, num, cfg.noise_dim)})


def toy_figure(sess, cfg, inputs, outputs, *, num=1000, seed=0, title=''):
    """PNG bytes of ``num`` real and ``num`` generated points over the
    discriminator's decision surface (its probability that a point is real),
    with the 0.5 contour; arguments as :func:`toy_samples`."""
    import plots  # matplotlib only loads for the toy GAN's figures

    real = ToyTarget.from_config(cfg).sample(np.random.default_rng(seed + 1), num)
    fake = toy_samples(sess, cfg, inputs, outputs, num=num, seed=seed)
    (x0, x1), (y0, y1) = plots.plot_range(real, fake)
    grid_x, grid_y = np.linspace(x0, x1, 101), np.linspace(y0, y1, 101)
    points = np.stack(np.meshgrid(grid_x, grid_y), -1).reshape(-1, 2).astype(np.float32)
    decision = sess.run(outputs['decision'], {inputs['real']: points})
    return plots.toy_gan_figure(real, fake, grid_x=grid_x, grid_y=grid_y,
                                decision=decision.reshape(len(grid_y), len(grid_x)),
                                title=title)


class ToyGAN(Model):
    """A GAN of points in the plane, the smallest living example of the Model
    contract: an MLP generator G (noise z -> point) learns the ToyTarget of
    the config against an MLP discriminator D (point -> logit).

    Inputs: 'real' [N, 2] target samples and 'z' [N, noise_dim] noise, fed
    from :class:`ToyPipeline`. One iteration, in one session run: forward
    fake = G(z), D on real and on fake (the second call reuses the variables
    of the first); update D on 0.5 (L(D(real), real) + L(D(fake), fake)),
    then G on L(D(fake), real); both gradients come from this forward pass
    (simultaneous gradient descent: unlike pix2pix, G is judged by D before
    its update; the var_lists keep each update to its own network); then
    global_step += 1. Losses: G, D_real, D_fake (D_gp with wgangp).

    Also: ``self.metrics``, D's accuracy on the batch (point called real when
    D's probability ``decision`` > 0.5; it should approach 50 %), logged as
    ``metric/<name>``; ``self.outputs`` {'fake', 'decision'} as
    build_inference's; :meth:`evaluate` and :meth:`figure`, which
    :meth:`epoch_report` gives the training loop at the end of each epoch.
    No visuals (no images).
    """

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        with tf.name_scope('summaries/'):
            metrics = [tf.raw_ops.ScalarSummary(tags=f'metric/{name}', values=value, name=name)
                       for name, value in self.metrics.items()]
            self.summary_op = tf1.summary.merge([self.summary_op] + metrics,
                                                name='scalars_and_metrics')

    @classmethod
    def input_pipeline(cls, cfg, root):
        """Fresh samples of the target and noise at every step (no dataset)."""
        return ToyPipeline(cfg)

    @classmethod
    def input_sizes(cls, cfg):
        return 1, 1

    def _build(self):
        cfg = self.cfg
        with tf.name_scope('inputs/'):
            real = tf1.placeholder(tf.float32, [None, 2], name='real')
            z = tf1.placeholder(tf.float32, [None, cfg.noise_dim], name='z')
        self.inputs = {'real': real, 'z': z}
        G, D = (self._add_network(network) for network in self._networks(cfg))

        fake = tf.identity(G(z), name='fake')
        logits_real, logits_fake = D(real), D(fake)
        mode, losses = cfg.gan_mode, self.losses
        with tf.name_scope('losses/'):
            losses['G'] = gan_loss(logits_fake, True, mode)
            losses['D_real'] = gan_loss(logits_real, True, mode)
            losses['D_fake'] = gan_loss(logits_fake, False, mode)
            loss_D = 0.5 * (losses['D_real'] + losses['D_fake'])
            if mode == 'wgangp':
                # gradient_penalty interpolates images: points pass as 1x1 images.
                def critic(images):
                    return D(tf.reshape(images, [-1, 2]))

                real_1x1, fake_1x1 = (tf.reshape(points, [-1, 1, 1, 2])
                                      for points in (real, tf.stop_gradient(fake)))
                losses['D_gp'] = gradient_penalty(critic, real_1x1, fake_1x1, cfg.lambda_gp)
                loss_D += losses['D_gp']
            loss_D = tf.identity(loss_D, name='D')
        with tf.name_scope('metrics/'):
            decision_real = self._decision(logits_real, mode)
            correct_real = tf.reduce_mean(tf.cast(decision_real > 0.5, tf.float32))
            correct_fake = tf.reduce_mean(tf.cast(self._decision(logits_fake, mode) <= 0.5,
                                                  tf.float32))
            self.metrics = {'D_accuracy': tf.identity(0.5 * (correct_real + correct_fake),
                                                      name='D_accuracy'),
                            'D_accuracy_real': tf.identity(correct_real, name='D_accuracy_real'),
                            'D_accuracy_fake': tf.identity(correct_fake, name='D_accuracy_fake')}
        self.outputs = {'fake': fake, 'decision': decision_real}

        train_D = self._minimize(loss_D, [D])
        train_G = self._minimize(losses['G'], [G], after=[train_D])
        self.train_op = self._count_step(after=[train_G])

    @staticmethod
    def _networks(cfg):
        common = dict(hidden_units=cfg.hidden_units, hidden_layers=cfg.hidden_layers)
        return (modules.MLP('G', input_dim=cfg.noise_dim, output_dim=2, **common),
                modules.MLP('D', input_dim=2, output_dim=1, **common))

    @staticmethod
    def _decision(logits, mode):
        """D's probability that points are real, [N]: the sigmoid of its logits
        (lsgan: its output, which regresses to 1 for real and 0 for fake)."""
        logits = logits[:, 0]
        return tf.identity(logits if mode == 'lsgan' else tf.sigmoid(logits), name='decision')

    @classmethod
    def build_inference(cls, cfg, *, training=False):
        """z [N, noise_dim] -> 'fake' [N, 2] (G), and points 'real' [N, 2] ->
        'decision' [N] (D's probability that they are real, for figures).
        ``training`` changes nothing: the MLPs have no dropout or norm."""
        with tf.name_scope('inputs/'):
            z = tf1.placeholder(tf.float32, [None, cfg.noise_dim], name='z')
            real = tf1.placeholder(tf.float32, [None, 2], name='real')
        G, D = cls._networks(cfg)
        outputs = {'fake': tf.identity(G(z), name='fake'),
                   'decision': cls._decision(D(real), cfg.gan_mode)}
        return {'z': z, 'real': real}, outputs

    def evaluate(self, sess, *, num=4096, seed=None):
        """The metrics (name -> float) on ``num`` target points and ``num``
        generated ones, drawn apart from the training batches and the same at
        every call (seed default cfg.seed)."""
        rng = np.random.default_rng([self.cfg.seed if seed is None else seed, 1])
        feed = {self.inputs['real']: ToyTarget.from_config(self.cfg).sample(rng, num),
                self.inputs['z']: toy_noise(rng, num, self.cfg.noise_dim)}
        return {name: float(value) for name, value in sess.run(self.metrics, feed).items()}

    def figure(self, sess, *, num=1000, seed=None, title=''):
        """PNG bytes of :func:`toy_figure`, with the same points every call
        (seed default cfg.seed), so the figures of successive epochs compare."""
        seed = self.cfg.seed if seed is None else seed
        return toy_figure(sess, self.cfg, self.inputs, self.outputs, num=num, seed=seed,
                          title=title)

    def epoch_report(self, sess):
        """D's accuracy on fresh samples (it should approach 50 %) and the
        figure of real and generated points over D's decision surface."""
        metrics = self.evaluate(sess)
        title = (f'step {int(sess.run(self.global_step))}: D accuracy '
                 f'{100 * metrics["D_accuracy"]:.1f} %')
        png = self.figure(sess, title=title)
        with Image.open(io.BytesIO(png)) as image:
            return metrics, {'toy_gan': np.asarray(image.convert('RGB'))}


def create(cfg, setup=None):
    """Builds the model of ``cfg.model`` (its class in registry.py) into the
    default graph; with a ``setup`` (distribute.Setup), in its strategy's
    scope when it has one, and with loss scaling when --amp applies."""
    setup = setup or distribute.Setup()
    with setup.strategy.scope() if setup.distributed else contextlib.nullcontext():
        return registry.of(cfg).model_class(cfg, loss_scaling=setup.mixed_precision(cfg))
