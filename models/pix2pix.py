"""pix2pix (Isola et al. 2017), and its colorization variant: paired
translation with a U-Net generator and a conditional PatchGAN."""

import tensorflow as tf

from cyclegan_tf import modules
from cyclegan_tf.data import pipeline
from cyclegan_tf.model import Model, gan_loss, gradient_penalty, l1

tf1 = tf.compat.v1


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
        real_A, real_B = self._image_inputs()
        G = self._add_network(self._generator(cfg))
        D = self._add_network(self.discriminator(cfg))

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
    def generator(cls, cfg):
        return cls._generator(cfg)

    @classmethod
    def discriminator(cls, cfg):
        """The conditional PatchGAN: (input, output) pairs on channels."""
        return modules.define_D(cfg, 'D', input_nc=cfg.input_nc + cfg.output_nc)

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
        generator = cls.inference_generators(cfg)['A']
        fake_B = tf.identity(generator(real_A, training=training), name='fake_B')
        return {'A': real_A}, cls._inference_outputs(real_A, fake_B)

    @staticmethod
    def _inference_outputs(real_A, fake_B):
        return {'fake_B': fake_B}

    @classmethod
    def inference_generators(cls, cfg):
        return {'A': cls._generator(cfg)}

    @classmethod
    def translation_of(cls, key, x, y):
        return cls._inference_outputs(x, y)[cls.TRANSLATIONS[key]]


def colorization_rgb(lightness, ab):
    """RGB [N, H, W, 3] in [-1, 1] of the colorization model's normalized
    ``lightness`` (L / 50 - 1, [N, H, W, 1]) and ``ab`` (ab / 110, [N, H, W, 2]):
    the graph twin of pipeline.colorization_to_rgb."""
    lab = tf.concat([(lightness + 1.0) * 50.0, ab * 110.0], -1)
    return pipeline.tf_lab_to_rgb(lab) * 2.0 - 1.0


class Colorization(Pix2Pix):
    """pix2pix from lightness to colour, as the official colorization model:
    real_A is the L channel of CIE Lab as L / 50 - 1 (one channel), real_B and
    fake_B the a and b channels as ab / 110 (two channels); the data layer
    supplies them so (data/pipeline.py, colorization layout).

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
