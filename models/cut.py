"""CUT and FastCUT (Park, Efros, Zhang, Zhu 2020, "Contrastive Learning for
Unpaired Image-to-Image Translation"): one generator, one discriminator and
the patch sampler of the PatchNCE loss, as the official code
(taesungp/contrastive-unpaired-translation, models/cut_model.py).

Names in the code and in the CUT paper:

    code    paper       what
    G       G = G_dec(G_enc)  generator A -> B (X -> Y); its features at nce_layers are G_enc's
    F       H_l         the patch sampler netF: a 2-layer MLP per layer, L2-normalized
    D       D           discriminator of domain B: real_B vs fake_B = G(real_A)
    NCE     L_PatchNCE(G, H, X)     patches of G(x) against the same patches of x
    NCE_Y   L_PatchNCE(G, H, Y)     the identity: G(y) against y (CUT; FastCUT has none)
    idt_B   G(y)

These are the official netG, netF, netD and loss names.
"""

import tensorflow as tf

from cyclegan_tf import modules, ops
from cyclegan_tf.model import Model, gan_loss, gradient_penalty

tf1 = tf.compat.v1


def define_G(cfg):
    """CUT's generator, as the official define_G makes it."""
    return modules.CUTResnetGenerator(
        'G', input_nc=cfg.input_nc, output_nc=cfg.output_nc, ngf=cfg.ngf,
        n_blocks=int(cfg.netG[7:-6]), use_dropout=not cfg.no_dropout, norm=cfg.normG,
        init_type=cfg.init_type, init_gain=cfg.init_gain, no_antialias=cfg.no_antialias,
        no_antialias_up=cfg.no_antialias_up)


def define_D(cfg):
    """CUT's discriminator, as the official define_D makes it."""
    return modules.CUTNLayerDiscriminator(
        'D', input_nc=cfg.output_nc, ndf=cfg.ndf,
        n_layers=3 if cfg.netD == 'basic' else cfg.n_layers_D, norm=cfg.normD,
        init_type=cfg.init_type, init_gain=cfg.init_gain, no_antialias=cfg.no_antialias)


def define_F(cfg):
    """CUT's patch sampler, as the official define_F makes it."""
    return modules.PatchSampleF('F', nc=cfg.netF_nc, num_patches=cfg.num_patches,
                                use_mlp=cfg.netF == 'mlp_sample', init_type=cfg.init_type,
                                init_gain=cfg.init_gain)


class CUT(Model):
    """CUT / FastCUT: G translates A to B; D judges B; F samples the patches
    whose features PatchNCE compares (positives: the same position of the
    input; negatives: other positions of the same image).

    One iteration, in one session run, as the official optimize_parameters:
    forward, one generator pass on real_A, or on [real_A; real_B] with nce_idt
    (with flip_equivariance, the batch flipped left-right with probability 1/2
    per iteration, ``self.flipped``), giving fake_B (and idt_B); update D on
    0.5 (L(D(real_B), real) + L(D(fake_B), fake)) with fake_B held constant;
    then update G and F together on lambda_GAN L(D(fake_B), real), judged by
    the *updated* D (built under a control dependency on the D update, as
    pix2pix), plus NCE, or the mean of NCE and NCE_Y with nce_idt; then
    global_step += 1.

    Each NCE term encodes its target (fake_B or idt_B; flipped back when the
    batch was flipped) and its source (real_A or real_B) with G's encoder
    again, as the official code, draws the patch ids on the source's features
    (``self.patch_ids[<loss name>]``, a list per layer: feed them to take
    given ones) and compares the target's patches at those ids with the
    source's; the source's side is a constant (the official feat_k.detach()),
    so it trains neither G nor F. F's variables are made by its first call,
    from the features' channel counts, as the official create_mlp.
    """

    TRANSLATIONS = {'A': 'fake_B'}
    GENERATORS = {'A': 'G'}

    def _build(self):
        cfg = self.cfg
        real_A, real_B = self._image_inputs()
        G, D, F = self._add_network(define_G(cfg)), self._add_network(define_D(cfg)), define_F(cfg)
        fake_B, idt_B = self._forward(G, real_A, real_B)

        losses, mode = {}, cfg.gan_mode
        with tf.name_scope('losses/'):
            detached = tf.stop_gradient(fake_B)
            losses['D_fake'] = gan_loss(D(detached), False, mode)
            losses['D_real'] = gan_loss(D(real_B), True, mode)
            loss_D = 0.5 * (losses['D_fake'] + losses['D_real'])
            if mode == 'wgangp':  # as pix2pix: WGAN without its penalty is unconstrained
                losses['D_gp'] = gradient_penalty(D, real_B, detached, cfg.lambda_gp)
                loss_D += losses['D_gp']
            loss_D = tf.identity(loss_D, name='D')
        train_D = self._minimize(loss_D, [D])

        seen = len(D.update_ops)
        loss_G = self._generator_loss(G, D, F, losses, train_D, real_A, real_B, fake_B, idt_B)
        trained = [G] + ([self._add_network(F)] if F.variables else [])
        train_G = self._minimize(loss_G, trained, after=[train_D])
        self.train_op = self._count_step(after=[train_G] + D.update_ops[seen:])
        self.updates = {'D': train_D, 'G': train_G}
        order = ('G_GAN', 'NCE', 'NCE_Y', 'D_real', 'D_fake', 'D_gp')  # the official display order
        self.losses.update((name, losses[name]) for name in order if name in losses)

    def _forward(self, G, real_A, real_B):
        """(fake_B, idt_B or None): the official forward(), one pass of G; sets
        the visuals and ``self.flipped``."""
        cfg = self.cfg
        if cfg.nce_idt and cfg.input_nc != cfg.output_nc:
            raise ValueError(f'nce_idt translates B images too: it needs input_nc == output_nc '
                             f'(got {cfg.input_nc} and {cfg.output_nc}); set --nonce_idt')
        real = tf.concat([real_A, real_B], 0, name='real') if cfg.nce_idt else real_A
        self.flipped = tf.constant(False, name='flipped')
        if cfg.flip_equivariance:  # the official np.random.random() < 0.5, once per iteration
            self.flipped = tf.less(tf.random.uniform([]), 0.5, name='flipped')
            real = flip_if(self.flipped, real)
        fake = G(real)
        count = tf.shape(real_A)[0]
        fake_B = tf.identity(fake[:count], name='fake_B')
        idt_B = tf.identity(fake[count:], name='idt_B') if cfg.nce_idt else None
        self.visuals = dict(real_A=real_A, fake_B=fake_B, real_B=real_B)
        self.visual_rows = [['real_A', 'fake_B', 'real_B']]
        if idt_B is not None:
            self.visuals['idt_B'] = idt_B
            self.visual_rows[0].append('idt_B')
        return fake_B, idt_B

    def _generator_loss(self, G, D, F, losses, train_D, real_A, real_B, fake_B, idt_B):
        """The official compute_G_loss: G_GAN (by the updated D) + the NCE terms."""
        cfg = self.cfg
        self.patch_ids = {}
        with tf.name_scope('losses/'):
            with tf.control_dependencies([train_D]):  # G is judged by the updated D
                gan = gan_loss(D(fake_B), True, cfg.gan_mode) if cfg.lambda_GAN > 0 else 0.0
            losses['G_GAN'] = tf.multiply(cfg.lambda_GAN, gan, name='G_GAN')
            nce = []
            if cfg.lambda_NCE > 0:
                losses['NCE'] = self._nce_loss(G, F, real_A, fake_B, 'NCE')
                nce.append(losses['NCE'])
                if cfg.nce_idt:
                    losses['NCE_Y'] = self._nce_loss(G, F, real_B, idt_B, 'NCE_Y')
                    nce.append(losses['NCE_Y'])
            terms = [losses['G_GAN']] + ([tf.add_n(nce) / len(nce)] if nce else [])
            return tf.add_n(terms, name='G')

    def _nce_loss(self, G, F, src, tgt, name):
        """The official calculate_NCE_loss(src, tgt): the mean over nce_layers of
        lambda_NCE times the mean PatchNCE loss of the layer's patches."""
        cfg = self.cfg
        layers = cfg.layers
        with tf.name_scope(name):
            feat_q = G(tgt, nce_layers=layers, encode_only=True)
            feat_q = [flip_if(self.flipped, f) for f in feat_q]  # back, where flipped
            feat_k = G(src, nce_layers=layers, encode_only=True)
            pool_k, ids = F(feat_k)
            pool_q, _ = F(feat_q, patch_ids=ids)
            self.patch_ids[name] = ids
            batch = tf.shape(src)[0]
            total = tf.add_n([
                cfg.lambda_NCE * tf.reduce_mean(ops.patch_nce_loss(
                    q, k, batch_size=batch, nce_T=cfg.nce_T,
                    nce_includes_all_negatives_from_minibatch=(
                        cfg.nce_includes_all_negatives_from_minibatch)))
                for q, k in zip(pool_q, pool_k)])
        return tf.divide(total, float(len(layers)), name=name)

    @classmethod
    def generator(cls, cfg):
        return define_G(cfg)

    @classmethod
    def discriminator(cls, cfg):
        return define_D(cfg)

    @classmethod
    def inference_generators(cls, cfg):
        """{'A': G}: an image larger than --tile_size translates in tiles, as
        CycleGAN's (G's receptive_radius counts its blur layers)."""
        return {'A': cls.generator(cfg)}

    @classmethod
    def build_inference(cls, cfg, *, training=False):
        """real_A -> fake_B; inputs {'A'}, outputs {'fake_B'} (the official test)."""
        with tf.name_scope('inputs/'):
            real_A = tf1.placeholder(tf.float32, [None, None, None, cfg.input_nc], name='real_A')
        generator = cls.inference_generators(cfg)['A']
        fake_B = tf.identity(generator(real_A, training=training), name='fake_B')
        return {'A': real_A}, {'fake_B': fake_B}


def flip_if(flipped, x):
    """``x`` [N, H, W, C] flipped left-right where the scalar bool ``flipped`` is true."""
    return tf.cond(flipped, lambda: tf.reverse(x, [2]), lambda: x)
