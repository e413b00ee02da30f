"""Datasets by name or by folder: find, download or generate one, return its folder.

:func:`prepare` turns ``cfg.dataset`` into the folder that the input pipeline
(pipeline.py) reads:

* a PATH (anything containing a path separator or starting with ``.`` or
  ``~``) is used as it is, once its layout is checked (layouts.py);
* ``shapes2stripes``, the built-in default, is generated on first use into
  ``<data_root>/shapes2stripes`` (paired models: ``shapes2stripes_paired``;
  shapes.py);
* the official CycleGAN and pix2pix sets (:data:`CYCLEGAN_DATASETS`,
  :data:`PIX2PIX_DATASETS`) are downloaded on first use into
  ``<data_root>/<name>`` (download.py), and their archive extracted
  (archives.py);
* any other name is ``<data_root>/<name>``, else a folder of that name in the
  working directory.

One process at a time fetches a set into a data_root
(download.download_lock): a second one waits, then uses the set the first
one fetched.
"""

import dataclasses
import logging
import os

from cyclegan_tf import config
from cyclegan_tf.data.archives import extract
from cyclegan_tf.data.download import TIMEOUT, download, download_lock, reason
from cyclegan_tf.data.layouts import (
    ALIGNED,
    ANY,
    COLORIZATION,
    DESCRIPTIONS,
    LAYOUT_HINTS,
    READABLE,
    UNALIGNED,
    DatasetError,
    check_folder,
    layout_hint,
    layout_problem,
)
from cyclegan_tf.data.shapes import BUILTIN, prepare_builtin

logger = logging.getLogger(__name__)

DEFAULT_URL = 'http://efrosgans.eecs.berkeley.edu'
URL_VARIABLE = 'CYCLEGAN_DATASETS_URL'


# ---------------------------------------------------------------------------
# Known datasets.

@dataclasses.dataclass(frozen=True)
class KnownDataset:
    """A set of the official servers: where it lives and what it holds.

    ``counts`` (folder -> number of images) and ``image_size`` (width, height
    of each file) are filled only where known; a count that differs after a
    download is logged as a warning, not an error.
    """

    name: str
    layout: str   # UNALIGNED, ALIGNED, COLORIZATION or ANY
    archive: str  # path under the base URL
    counts: tuple = ()
    image_size: tuple = None

    def url(self, base):
        return f'{base.rstrip("/")}/{self.archive}'

    @property
    def extension(self):
        return '.tar.gz' if self.archive.endswith('.tar.gz') else '.zip'


def _cyclegan(name, layout=UNALIGNED, **known):
    return KnownDataset(name, layout, f'cyclegan/datasets/{name}.zip', **known)


def _pix2pix(name, **known):
    return KnownDataset(name, ALIGNED, f'pix2pix/datasets/{name}.tar.gz', **known)


# The lists of the official datasets/download_cyclegan_dataset.sh and
# download_pix2pix_dataset.sh. The official mini_pix2pix and mini_colorization
# are zips on the CycleGAN server (its test script downloads them with the
# CycleGAN script), so they are listed here, not with pix2pix.
CYCLEGAN_DATASETS = {d.name: d for d in (
    _cyclegan('ae_photos', ANY),  # photos for testing the pretrained style models
    _cyclegan('apple2orange'),
    _cyclegan('summer2winter_yosemite'),
    _cyclegan('horse2zebra', counts=(('trainA', 1067), ('trainB', 1334),
                                     ('testA', 120), ('testB', 140)),
              image_size=(256, 256)),
    _cyclegan('monet2photo'),
    _cyclegan('cezanne2photo'),
    _cyclegan('ukiyoe2photo'),
    _cyclegan('vangogh2photo'),
    _cyclegan('maps', image_size=(600, 600)),
    _cyclegan('facades'),
    _cyclegan('iphone2dslr_flower'),
    _cyclegan('mini'),
    _cyclegan('mini_pix2pix', ALIGNED),
    _cyclegan('mini_colorization', COLORIZATION),
)}
PIX2PIX_DATASETS = {d.name: d for d in (
    _pix2pix('facades', counts=(('train', 400), ('val', 100), ('test', 106)),
             image_size=(512, 256)),
    _pix2pix('maps', image_size=(1200, 600)),
    _pix2pix('edges2shoes', image_size=(512, 256)),
    _pix2pix('edges2handbags', image_size=(512, 256)),
    _pix2pix('night2day'),
)}
# Listed by the official scripts but not downloadable.
UNAVAILABLE = {
    'cityscapes': 'cityscapes cannot be downloaded from the CycleGAN servers (license): get '
                  'gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from '
                  'https://cityscapes-dataset.com and combine them with the official '
                  'datasets/prepare_cityscapes_dataset.py',
}


def known_names():
    """Every name :func:`prepare` knows, sorted, the built-in first."""
    return [BUILTIN] + sorted(set(CYCLEGAN_DATASETS) | set(PIX2PIX_DATASETS) | set(UNAVAILABLE))


def base_url(cfg):
    """The dataset server: ``cfg.download_url``, else $CYCLEGAN_DATASETS_URL, else
    official. Raises DatasetError for a URL that is not http or https."""
    for source, url in (('--download_url', cfg.download_url),
                        (f'${URL_VARIABLE}', os.environ.get(URL_VARIABLE))):
        if url:
            problem = config.url_problem(url, base=True)
            if problem:
                raise DatasetError(f'{source} {problem}, got {url!r}')
            return url.rstrip('/')
    return DEFAULT_URL


def find_known(name, layout):
    """The known set ``name`` for a model reading ``layout``, or None.

    facades and maps exist on both servers: paired models get the pix2pix
    version. Deviation: colorization reads plain RGB images, so it prefers the
    CycleGAN version of those two (whose domains are plain photos) to the
    pix2pix one (whose files are A|B pairs).
    """
    tables = (PIX2PIX_DATASETS, CYCLEGAN_DATASETS) if layout == ALIGNED else (
        CYCLEGAN_DATASETS, PIX2PIX_DATASETS)
    for table in tables:
        if name in table:
            return table[name]
    return None


def _looks_like_path(name):
    return (os.sep in name or '/' in name or name.startswith(('.', '~'))
            or os.path.isabs(name))


def prepare(cfg, split='train', *, layout):
    """The folder of ``cfg.dataset``, downloaded or generated if needed.

    Args:
      cfg: an ImageConfig (dataset, data_root, download_url, model).
      split: the split that must hold images ('train', 'test', 'val'); a
        downloaded set is checked whole.
      layout: the layout the model reads (UNALIGNED, ALIGNED, COLORIZATION:
        its ``data`` in registry.py).
    Returns:
      the dataset folder (a path string) in that layout.
    Raises:
      DatasetError: one line saying what is wrong and what to do.
    """
    name = cfg.dataset
    if _looks_like_path(name):
        return check_folder(os.path.expanduser(name), layout, split)
    if name == BUILTIN:
        return check_folder(prepare_builtin(cfg.data_root, paired=layout == ALIGNED),
                            layout, split)
    root = os.path.join(cfg.data_root, name)
    if name in UNAVAILABLE and not os.path.isdir(root):
        raise DatasetError(f'{UNAVAILABLE[name]}, into {layout_hint(root, layout)}')
    known = find_known(name, layout)
    if known is not None:
        if known.layout not in READABLE[layout]:
            raise DatasetError(f'{name} is {DESCRIPTIONS[known.layout]}; the {cfg.model} '
                               f'model reads {LAYOUT_HINTS[layout]}')

        # Downloaded only when neither the split asked for (a copy by hand
        # will do) nor the whole official layout (maps has no test/) is there.
        def missing():
            return (layout_problem(root, layout, split) is not None
                    and layout_problem(root, known.layout) is not None)

        if missing():
            base = base_url(cfg)  # checked before anything is created
            with download_lock(cfg.data_root, name):
                if missing():  # else another process fetched it while we waited
                    fetch(known, cfg.data_root, base)
        return check_folder(root, layout, split)
    if os.path.isdir(root):
        return check_folder(root, layout, split)
    if os.path.isdir(name):
        return check_folder(name, layout, split)
    raise DatasetError(f'unknown dataset {name!r} and no folder {root}: use one of '
                       f'{", ".join(known_names())}, or the path of a folder laid out as '
                       f'{LAYOUT_HINTS[layout]}')


def fetch(known, data_root, base, *, timeout=TIMEOUT):
    """Downloads and extracts a known set into ``<data_root>/<name>``; returns it.
    An archive already at ``<data_root>/<name><ext>`` is used without download."""
    os.makedirs(data_root, exist_ok=True)
    target = os.path.join(data_root, known.name)
    archive = target + known.extension
    url = known.url(base)
    hint = f'; to use your own copy, put it under {layout_hint(target, known.layout)}'
    if not os.path.isfile(archive):
        logger.info('downloading %s to %s', url, archive)
        download(url, archive, timeout=timeout, hint=hint)
    try:
        extract(archive, target, known.layout, known)
    except DatasetError as e:
        os.remove(archive)  # unusable: a later run downloads it again
        raise DatasetError(f'{e} (deleted the archive){hint}') from None
    except OSError as e:
        raise DatasetError(f'could not extract {archive} ({reason(e)})') from None
    os.remove(archive)
    return target
