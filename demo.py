"""A run in the browser: ``python demo.py --run runs/<name>`` serves a page on
http://127.0.0.1:7860 (installed: ``cyclegan-demo``) until Ctrl-C.

The page of an image model (CycleGAN, pix2pix, colorization, and any model
of registry.py that translates images) shows an image upload (and the
browser's webcam where it offers one), the direction where the model
translates both ways, the input beside its translation and, for CycleGAN,
the reconstruction, a download of the translation as PNG, the run's name,
model, checkpoint step and FID (where <run>/test_<step>/scores.json has one,
from evaluate.py), and example images of the run's test split (where the
dataset is on disk: the demo downloads nothing). The translation is
inference.Translator's, the same as sample.py writes for the same file.
Images whose longer side is over --max_size are scaled down to it first,
with a note on the page, and those over --tile_size translate in tiles as
sample.py's; uploads of more than --max_megapixels are refused.
Every bad upload (not an image, unreadable, too large) is a message on the
page; the server goes on serving.

The toy GAN's page shows its figure (real and generated points over the
discriminator's decision surface) and a button that draws new samples.

One translator serves every user of the process; requests wait in Gradio's
queue and each gets its own result. The page is served on --host
(127.0.0.1: this machine only; binding any other address is up to you) and
published through Gradio's share servers only with --share.

Gradio is an optional dependency: pip install -r requirements-demo.txt, or
the extra cyclegan-tf[demo].

Exit status: 0 stopped by Ctrl-C; 2 a bad command line or run, or Gradio
missing (one line on stderr).
"""

import itertools
import os
import sys
import tempfile
import threading
import uuid

import numpy as np
from PIL import Image

from cyclegan_tf import config, registry
from cyclegan_tf.data import layouts
from cyclegan_tf.evaluation import sampling
from cyclegan_tf.running import commands, runs, session

INSTALL = ("the demo needs Gradio, which the core install leaves out: pip install -r "
           "requirements-demo.txt (or pip install 'cyclegan-tf[demo]')")
OTHER = {'A': 'B', 'B': 'A'}
HEIGHT = 320  # of the images on the page, in CSS pixels
EXTENSIONS = ('PNG', 'JPEG', 'BMP', 'TIFF', 'GIF', 'WebP')


class UploadError(Exception):
    """An upload the page cannot translate: its message is shown on the page."""


def parse(argv):
    """The DemoConfig of the command line ``argv`` (argv[0]: the program)."""
    return config.parse_settings(config.DemoConfig, argv)


def import_gradio():
    """The gradio module; RunError saying how to install it where it is missing."""
    try:
        import gradio
    except ImportError:
        raise runs.RunError(INSTALL) from None
    return gradio


def fit(image, max_size):
    """(image, note): the PIL ``image`` scaled down so that its longer side is
    at most ``max_size`` (its aspect ratio kept), and a line saying so, or ''
    where it fits. The one place that decides what the demo does with a
    large image."""
    width, height = image.size
    if max(width, height) <= max_size:
        return image, ''
    scale = max_size / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    note = (f'The image ({width}x{height} px) was scaled down to {size[0]}x{size[1]} px '
            f'before translating: the demo translates at most {max_size} px on the longer '
            f'side (demo.py --max_size).')
    return image.resize(size, Image.LANCZOS), note


def read_upload(path, dcfg):
    """(PIL image, note) of the uploaded file ``path``, fit to --max_size;
    UploadError for a file that is no readable image or has too many pixels."""
    if not path:
        raise UploadError('Upload an image first (or pick an example).')
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > dcfg.max_megapixels * 1e6:
                raise UploadError(f'The image is {width}x{height} px ({width * height / 1e6:.1f} '
                                  f'megapixels): the demo takes at most {dcfg.max_megapixels:g} '
                                  f'megapixels. Scale it down first.')
            image.load()
            return fit(image.copy(), dcfg.max_size)
    except UploadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UploadError(unreadable(e, path)) from None


def unreadable(error, path):
    """The page's line for an upload ``path`` that PIL cannot read (``error``),
    without the server's folders."""
    text = runs.one_line(error).replace(str(path), os.path.basename(str(path)))
    return f'Cannot read the upload as an image ({", ".join(EXTENSIONS)}, ...): {text}'


def fid_scores(run_dir, step):
    """{direction: FID} of <run>/test_<step>/scores.json (evaluate.py's), {} if none."""
    path = os.path.join(run_dir, f'test_{step}', sampling.SCORES_FILE)
    scores = sampling.read_scores(path) if os.path.isfile(path) else {}
    return {direction: entry['fid'] for direction, entry in sorted(scores.items())
            if isinstance(entry, dict) and isinstance(entry.get('fid'), (int, float))}


def describe(run_dir, cfg, checkpoint):
    """The page's line about the run: name, model, checkpoint step, FID."""
    step = runs.step_of(checkpoint)
    parts = [f'**run** {os.path.basename(os.path.normpath(run_dir))}', f'**model** {cfg.model}',
             f'**checkpoint** {os.path.basename(checkpoint)} (step {step})']
    if runs.imported_networks(run_dir) is not None and step == 0:
        parts[-1] += f', imported {" and ".join(runs.imported_networks(run_dir))}'
    fids = fid_scores(run_dir, step)
    if fids:
        parts.append('**FID** ' + ', '.join(f'{d} {v:.2f}' for d, v in fids.items()))
    return ' · '.join(parts)


def _dataset_on_disk(cfg):
    """Whether the run's dataset is on disk (the demo downloads nor generates nothing)."""
    name = os.path.expanduser(cfg.dataset)
    return os.path.isdir(name) or os.path.isdir(os.path.join(cfg.data_root, cfg.dataset))


def example_files(cfg, keys, num, folder):
    """[[path, direction]]: up to ``num`` images per direction of ``keys``
    from the run's test split, copied into ``folder`` (an aligned pair's
    input half cut out); [] where the dataset is not on disk."""
    if not num or not _dataset_on_disk(cfg):
        return []
    try:
        work = sampling.jobs(cfg, num_test=num)
    except layouts.DatasetError:
        return []
    aligned = registry.of(cfg).data == layouts.ALIGNED
    found = []
    for key, _, files in work:
        if key not in keys:
            continue
        for i, path in enumerate(files.get(key, files.get('AB', []))):
            copy = os.path.join(folder, f'example_{key}_{i}.png')
            try:
                _copy_example(path, copy, aligned and key not in files, cfg.direction)
            except (OSError, ValueError, SyntaxError):
                continue  # an unreadable file of the dataset: no example
            found.append([copy, f'{key}to{OTHER[key]}'])
    return found


def _copy_example(path, copy, pair, direction):
    """Writes the image file ``path`` to ``copy`` as PNG; of a ``pair`` (A|B
    side by side) the model's input half (B's after --direction BtoA)."""
    with Image.open(path) as image:
        if pair:
            half = image.width // 2
            image = image.crop((half, 0, image.width, image.height) if direction == 'BtoA'
                               else (0, 0, half, image.height))
        image.save(copy)


class Page:
    """What the page's events call, for every user of the process: one
    inference.Translator (or, for the toy GAN, one PointSampler) of the run
    at ``checkpoint``. Each request writes its files into a folder of its own."""

    def __init__(self, dcfg, run_dir, checkpoint):
        from cyclegan_tf import inference

        self.dcfg, self.run_dir, self.checkpoint = dcfg, run_dir, checkpoint
        self.cfg = runs.load_config(run_dir)
        self.images = registry.of(self.cfg).images
        self.folder = tempfile.TemporaryDirectory(prefix='cyclegan-demo-')
        if self.images:
            self.model = inference.Translator.from_run(
                run_dir, checkpoint=checkpoint, eval=dcfg.eval, tile_size=dcfg.tile_size,
                norm_stats_size=dcfg.norm_stats_size)
            self.keys = self.model.keys
            self.examples = example_files(self.cfg, self.keys, dcfg.num_examples,
                                          self.folder.name)
        else:
            self.model = inference.PointSampler.from_run(run_dir, checkpoint=checkpoint)
            self.keys, self.examples = (), []
        self.about = describe(run_dir, self.cfg, self.model.checkpoint)
        self.seeds = itertools.count(self.cfg.seed)
        self.lock = threading.Lock()  # one session run at a time, whatever the queue allows

    @property
    def directions(self):
        return [f'{key}to{OTHER[key]}' for key in self.keys]

    @property
    def reconstructs(self):
        """Whether the model reconstructs its input (CycleGAN with both generators)."""
        return any('reconstruction' in self.model.fetches(key) for key in self.keys)

    def refuse_direction(self, direction):
        """The page's line for a ``direction`` the model does not translate."""
        return f'Choose a direction: {" or ".join(self.directions)} (not {direction!r}).'

    def translate(self, path, direction):
        """(translation, reconstruction or None, PNG path, note) of the upload
        ``path`` in ``direction``; UploadError or RunError for a bad request."""
        if direction not in self.directions:
            raise UploadError(self.refuse_direction(direction))
        image, note = read_upload(path, self.dcfg)
        with self.lock:
            results = self.model.results(image, direction)
        key = direction[0]
        stem = os.path.splitext(os.path.basename(path))[0][:64] or 'image'
        folder = os.path.join(self.folder.name, uuid.uuid4().hex)
        os.makedirs(folder)
        png = os.path.join(folder, f'{stem}_fake_{OTHER[key]}.png')
        shown = {name: _rgb_or_grey(image) for name, image in results.items()}
        Image.fromarray(shown['translation']).save(png)
        return shown['translation'], shown.get('reconstruction'), png, note

    def draw(self):
        """(figure uint8 [H, W, 3], a line of the points' mean and covariance):
        new points of the toy GAN, from the next seed."""
        import io

        seed = next(self.seeds)
        num = self.dcfg.num_points
        with self.lock:
            points = self.model.points(num=num, seed=seed)
            png = self.model.figure(num=num, seed=seed, title=f'seed {seed}')
        with Image.open(io.BytesIO(png)) as figure:
            rgb = np.asarray(figure.convert('RGB'))
        mean = np.round(points.mean(0), 3).tolist()
        cov = np.round(np.cov(points, rowvar=False), 3).tolist()
        return rgb, f'{num} points of seed {seed}: mean {mean}, covariance {cov}'

    def close(self):
        self.model.close()
        self.folder.cleanup()


def _rgb_or_grey(image):
    """uint8 [H, W] of a one-channel image, else the image [H, W, 3]."""
    return image[..., 0] if image.shape[-1] == 1 else image


def _on_page(gr, function):
    """``function`` whose errors of the user's making are messages on the page."""
    def handler(*args):
        try:
            return function(*args)
        except (UploadError, runs.RunError, ValueError) as e:
            raise gr.Error(runs.one_line(e), print_exception=False) from None
    return handler


def _guard(gr, component, message):
    """Makes what Gradio's own preprocessing of ``component`` refuses (before
    the handler sees it) a message on the page, ``message(error, payload)``,
    instead of a traceback on the server's console."""
    preprocess = component.preprocess

    def guarded(payload):
        try:
            return preprocess(payload)
        except Exception as e:  # whatever PIL raises on a file that is no image, gr.Error
            raise gr.Error(message(e, payload), print_exception=False) from None
    component.preprocess = guarded
    return component


def _unreadable_upload(error, payload):
    return unreadable(error, getattr(payload, 'path', '') or '')


def image_page(gr, page):
    """The widgets and events of an image model's page (inside gr.Blocks)."""
    with gr.Row():
        upload = _guard(gr, gr.Image(
            type='filepath', label='input', sources=['upload', 'webcam', 'clipboard'],
            height=HEIGHT, elem_id='input'), _unreadable_upload)
        translation = gr.Image(type='numpy', format='png', label='translation', height=HEIGHT,
                               interactive=False, buttons=['download', 'fullscreen'],
                               elem_id='translation')
        reconstruction = gr.Image(type='numpy', format='png', label='reconstruction',
                                  height=HEIGHT, interactive=False, visible=page.reconstructs,
                                  buttons=['download', 'fullscreen'], elem_id='reconstruction')
    with gr.Row():
        direction = _guard(gr, gr.Radio(
            page.directions, value=page.directions[0], label='direction',
            visible=len(page.directions) > 1, elem_id='direction'),
            lambda _, value: page.refuse_direction(value))
        button = gr.Button('Translate', variant='primary', elem_id='translate')
    note = gr.Markdown(elem_id='note')
    download = gr.File(label='the translation as PNG', interactive=False, elem_id='download')
    gr.Markdown(f'Images over {page.dcfg.max_size} px on the longer side are scaled down to it '
                f'first; uploads over {page.dcfg.max_megapixels:g} megapixels are refused.')
    outputs = [translation, reconstruction, download, note]
    translate = _on_page(gr, page.translate)
    button.click(translate, [upload, direction], outputs, api_name='translate')
    if page.examples:
        gr.Examples(page.examples, inputs=[upload, direction], outputs=outputs, fn=translate,
                    run_on_click=True, cache_examples=False,
                    label="examples from the run's test split (click one to translate it)")
    upload.upload(translate, [upload, direction], outputs, api_name=False)


def points_page(gr, page):
    """The widgets and events of the toy GAN's page: its figure, new samples."""
    first, line = page.draw()
    figure = gr.Image(first, type='numpy', format='png', label='real and generated points '
                      "over the discriminator's decision surface", interactive=False,
                      elem_id='figure')
    text = gr.Markdown(line, elem_id='points')
    button = gr.Button('Draw new samples', variant='primary', elem_id='draw')
    button.click(_on_page(gr, page.draw), [], [figure, text], api_name='draw')


def build(gr, page):
    """The gr.Blocks app of ``page``, its queue on."""
    with gr.Blocks(title=f'{os.path.basename(os.path.normpath(page.run_dir))} · cyclegan_tf',
                   analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(page.about, elem_id='about')
        (image_page if page.images else points_page)(gr, page)
    return app.queue(default_concurrency_limit=1)


def launch(app, dcfg, **kwargs):
    """Serves ``app`` on --host:--port (published only with --share)."""
    return app.launch(server_name=dcfg.host, server_port=dcfg.port, share=bool(dcfg.share),
                      max_file_size=f'{dcfg.max_upload_mb}mb', ssr_mode=False,
                      **kwargs)


def run(argv):
    if commands.wants_help(argv):
        return commands.print_help(__doc__, config.DemoConfig)
    dcfg = parse(argv)
    gr = import_gradio()  # before TensorFlow loads: a missing Gradio fails at once
    run_dir, checkpoint = runs.locate(dcfg.run, dcfg.checkpoint, best=dcfg.best)
    page = Page(dcfg, run_dir, checkpoint)
    try:
        print(f'Serving {run_dir} at {page.model.checkpoint} on http://{dcfg.host}:{dcfg.port} '
              f'(Ctrl-C stops)')
        launch(build(gr, page), dcfg)
    finally:
        page.close()
    return commands.EXIT_OK


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    return commands.run_command('demo.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
