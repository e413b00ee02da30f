"""The toy GAN: MLPs learn a 2-D Gaussian (or a ring of Gaussians) in
seconds, with its target, its data, and its figures (the discriminator's
decision surface under real and generated points).

The figures use matplotlib's object API on an Agg canvas: no display, no
pyplot and none of its global state, so they can be drawn from any thread
or test.
"""

import io

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cyclegan_tf import modules
from cyclegan_tf.model import Model, gan_loss, gradient_penalty

tf1 = tf.compat.v1


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
    """The toy GAN's data, with the interface of pipeline.InputPipeline.

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
    real = ToyTarget.from_config(cfg).sample(np.random.default_rng(seed + 1), num)
    fake = toy_samples(sess, cfg, inputs, outputs, num=num, seed=seed)
    (x0, x1), (y0, y1) = plot_range(real, fake)
    grid_x, grid_y = np.linspace(x0, x1, 101), np.linspace(y0, y1, 101)
    points = np.stack(np.meshgrid(grid_x, grid_y), -1).reshape(-1, 2).astype(np.float32)
    decision = sess.run(outputs['decision'], {inputs['real']: points})
    return toy_gan_figure(real, fake, grid_x=grid_x, grid_y=grid_y,
                          decision=decision.reshape(len(grid_y), len(grid_x)), title=title)


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

    def scalars(self):
        """The losses and the learning rate, and D's accuracy as ``metric/<name>``."""
        return {**super().scalars(),
                **{f'metric/{name}': value for name, value in self.metrics.items()}}

    @classmethod
    def input_pipeline(cls, cfg, root, layout):
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


# ------------------------------------------------------------- figures


def plot_range(*points, margin=0.2, percentile=0.5):
    """((x0, x1), (y0, y1)): a square-ish window around arrays of points
    [N, 2], from the ``percentile`` to the 100 - ``percentile`` percentile
    of all of them (stray generated points do not shrink the picture),
    widened by ``margin`` of its size on each side."""
    stacked = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in points])
    low, high = np.percentile(stacked, [percentile, 100 - percentile], axis=0)
    half = 0.5 * max(float(np.max(high - low)), 1e-3) * (1 + 2 * margin)
    center = 0.5 * (low + high)
    return tuple((float(c - half), float(c + half)) for c in center)


def toy_gan_figure(real, fake, *, grid_x, grid_y, decision, title='', size=5.0, dpi=100):
    """PNG bytes: ``real`` and ``fake`` points ([N, 2] each) over the
    discriminator's decision surface.

    grid_x [W] and grid_y [H]: the grid's coordinates; decision [H, W]: D's
    probability that the point (grid_x[j], grid_y[i]) is real, drawn as
    filled contours with a line at 0.5, D's decision boundary.
    """
    figure = Figure(figsize=(size * 1.2, size), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    surface = axes.contourf(grid_x, grid_y, np.clip(decision, 0.0, 1.0),
                            levels=np.linspace(0.0, 1.0, 11), cmap='coolwarm', alpha=0.7)
    if np.min(decision) < 0.5 < np.max(decision):
        axes.contour(grid_x, grid_y, decision, levels=[0.5], colors='black', linewidths=1.0)
    figure.colorbar(surface, ax=axes, label='D(x): probability that x is real')
    real, fake = np.asarray(real), np.asarray(fake)
    axes.scatter(real[:, 0], real[:, 1], s=4, color='tab:green', alpha=0.6, label='real')
    axes.scatter(fake[:, 0], fake[:, 1], s=4, color='tab:purple', alpha=0.6, label='generated')
    axes.set_xlim(grid_x[0], grid_x[-1])
    axes.set_ylim(grid_y[0], grid_y[-1])
    axes.set_aspect('equal')
    axes.legend(loc='upper right', markerscale=3)
    if title:
        axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()
