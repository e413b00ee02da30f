"""The models, one file each: a model.Model subclass (its graph, networks,
losses and update order) and whatever only it needs.

    cycle_gan.py   CycleGAN, and its image pools
    pix2pix.py     pix2pix, and colorization (pix2pix from L to ab)
    cut.py         CUT and FastCUT: one generator, its patch sampler, PatchNCE
    toy_gan.py     the toy 2-D GAN, its target, data and figures

Adding a model: its config class in config.py, its Model subclass in a new
file here, one line in registry.MODELS (README.md, "Adding a model").
"""
