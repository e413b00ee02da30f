"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, image pools.

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

import json

import numpy as np
import tensorflow as tf

from cyclegan_tf import modules
from cyclegan_tf.model import Model, gan_loss, gradient_penalty, l1

tf1 = tf.compat.v1


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


def regroup_pools(states, count, *, domains):
    """``count`` host states from the list ``states`` saved by a run of
    len(states) replicas, each holding one pool per domain (``pool_<d>/``
    keys): each domain's images of all of them, taken in turn from each,
    dealt out in turn to the ``count`` replicas (each keeps at most its pool
    size); a replica that was saved keeps its random generator."""
    if len(states) == count:
        return states
    regrouped = [{} for _ in range(count)]
    for domain in domains:
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
        real_A, real_B = self._image_inputs()
        G_A, G_B = (self._add_network(G) for G in self._generators(cfg))
        D_A = self._add_network(modules.define_D(cfg, 'D_A', input_nc=cfg.output_nc))
        D_B = self._add_network(modules.define_D(cfg, 'D_B', input_nc=cfg.input_nc))
        fake = self._forward(G_A, G_B, real_A, real_B)

        losses = self.losses
        with tf.name_scope('losses/'):
            losses['G_A'] = gan_loss(D_A(fake['fake_B']), True, cfg.gan_mode)
            losses['G_B'] = gan_loss(D_B(fake['fake_A']), True, cfg.gan_mode)
            losses['cycle_A'] = cfg.lambda_A * l1(fake['rec_A'], real_A)
            losses['cycle_B'] = cfg.lambda_B * l1(fake['rec_B'], real_B)
            if 'idt_A' in fake:
                losses['idt_A'] = cfg.lambda_B * cfg.lambda_identity * l1(fake['idt_A'], real_B)
                losses['idt_B'] = cfg.lambda_A * cfg.lambda_identity * l1(fake['idt_B'], real_A)
            loss_G = tf.add_n(list(losses.values()), name='G')
        pool_fake_B, pool_fake_A = self._pooled(fake['fake_B'], fake['fake_A'])
        with tf.name_scope('losses/'):
            losses['D_A'] = self._discriminator_loss(D_A, real_B, pool_fake_B)
            losses['D_B'] = self._discriminator_loss(D_B, real_A, pool_fake_A)

        train_G = self._minimize(loss_G, [G_A, G_B])
        with tf.name_scope('losses/'):
            loss_D = tf.add(losses['D_A'], losses['D_B'], name='D')
        train_D = self._minimize(loss_D, [D_A, D_B], after=[train_G])
        self.train_op = self._count_step(after=[train_D])

    def _forward(self, G_A, G_B, real_A, real_B):
        """The generators' outputs, by name (the official forward(), with the
        identity mappings): fake_B, rec_A, fake_A, rec_B, idt_A, idt_B; also
        the visuals and their grid."""
        fake_B = tf.identity(G_A(real_A), name='fake_B')
        rec_A = tf.identity(G_B(fake_B), name='rec_A')
        fake_A = tf.identity(G_B(real_B), name='fake_A')
        rec_B = tf.identity(G_A(fake_A), name='rec_B')
        outputs = dict(fake_B=fake_B, rec_A=rec_A, fake_A=fake_A, rec_B=rec_B)
        self.visuals = dict(real_A=real_A, fake_B=fake_B, rec_A=rec_A,
                            real_B=real_B, fake_A=fake_A, rec_B=rec_B)
        self.visual_rows = [['real_A', 'fake_B', 'rec_A'], ['real_B', 'fake_A', 'rec_B']]
        if self.cfg.lambda_identity > 0:
            if self.cfg.input_nc != self.cfg.output_nc:
                raise ValueError('the identity loss needs input_nc == output_nc; '
                                 'set --lambda_identity 0')
            outputs['idt_A'] = tf.identity(G_A(real_B), name='idt_A')
            outputs['idt_B'] = tf.identity(G_B(real_A), name='idt_B')
            self.visuals.update(idt_B=outputs['idt_B'], idt_A=outputs['idt_A'])
            self.visual_rows[0].append('idt_B')
            self.visual_rows[1].append('idt_A')
        return outputs

    def _pooled(self, fake_B, fake_A):
        """The fakes the discriminators see: this iteration's, through the image
        pools (never recomputed), as (fake_B, fake_A)."""
        with tf.name_scope('image_pool/'):
            first, *rest = self.host_seed  # (cfg.seed,) on one device
            self.pools = {'A': ImagePool(self.cfg.pool_size, [first + 1, *rest]),
                          'B': ImagePool(self.cfg.pool_size, [first + 2, *rest])}
            return (self.pools['B'].as_op(tf.stop_gradient(fake_B), 'fake_B'),
                    self.pools['A'].as_op(tf.stop_gradient(fake_A), 'fake_A'))

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
    def inference_generators(cls, cfg):
        """{'A': G_A, 'B': G_B}; the reconstruction of A is G_B of its translation."""
        return dict(zip('AB', cls._generators(cfg)))

    @classmethod
    def build_inference(cls, cfg, *, training=False):
        """A -> fake_B -> rec_A and B -> fake_A -> rec_B; feed A, B or both."""
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, None, None, cfg.input_nc], name='real_A')
            real_B = tf1.placeholder(tf.float32, [None, None, None, cfg.output_nc], name='real_B')
        G_A, G_B = cls.inference_generators(cfg).values()
        fake_B = tf.identity(G_A(real_A, training=training), name='fake_B')
        fake_A = tf.identity(G_B(real_B, training=training), name='fake_A')
        outputs = dict(fake_B=fake_B, rec_A=tf.identity(G_B(fake_B, training=training), 'rec_A'),
                       fake_A=fake_A, rec_B=tf.identity(G_A(fake_A, training=training), 'rec_B'))
        return {'A': real_A, 'B': real_B}, outputs

    def host_state(self):
        return {f'pool_{domain}/{key}': value for domain, pool in self.pools.items()
                for key, value in pool.state().items()}

    def load_host_state(self, state):
        for domain, pool in self.pools.items():
            prefix = f'pool_{domain}/'
            pool.load_state({k[len(prefix):]: v for k, v in state.items()
                             if k.startswith(prefix)})

    @classmethod
    def regroup_host_states(cls, states, count):
        """Pools saved by another number of replicas: see :func:`regroup_pools`."""
        return regroup_pools(states, count, domains=('A', 'B'))
