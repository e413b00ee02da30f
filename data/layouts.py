"""Dataset folders and their layouts: which files are images, listing them,
and checking that a folder holds the layout a model reads.

Layouts, as the official implementation reads them::

    unaligned (cycle_gan):   trainA/ trainB/ testA/ testB/   any image files
    aligned (pix2pix):       train/ test/ (or val/)          each file A|B side by side
    colorization:            train/ test/                    RGB images; an unaligned
                                                             folder works too (both
                                                             domains are read)

Each model's layout is the ``data`` of its entry in registry.py.
"""

import logging
import os

logger = logging.getLogger(__name__)


class DatasetError(Exception):
    """A dataset that cannot be found, downloaded, extracted or read; the
    message is one line, meant to be printed without a traceback."""


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')  # any letter case

UNALIGNED, ALIGNED, COLORIZATION, ANY = 'unaligned', 'aligned', 'colorization', 'any'
LAYOUT_HINTS = {
    UNALIGNED: '{trainA,trainB,testA,testB}/',
    ALIGNED: '{train,test}/ (each image A|B side by side)',
    COLORIZATION: '{train,test}/ (RGB images)',
    ANY: '(a folder of images)',
}
# Which layouts of the known sets each model's layout can read.
READABLE = {UNALIGNED: (UNALIGNED, ANY), ALIGNED: (ALIGNED,),
            COLORIZATION: (COLORIZATION, UNALIGNED, ANY)}
DESCRIPTIONS = {UNALIGNED: 'an unaligned (CycleGAN) dataset',
                ALIGNED: 'a paired (pix2pix) dataset',
                COLORIZATION: 'a colorization dataset', ANY: 'a folder of test photos'}
LAYOUT_FOLDERS = ('train', 'test', 'val', 'trainA', 'trainB', 'testA', 'testB', 'valA', 'valB')
_JUNK = ('__MACOSX',)  # folders some zip tools add; never images


# ---------------------------------------------------------------------------
# Folders and layouts.

def is_image_file(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_hidden(name):
    # Deviation: the official make_dataset lists every file with an image
    # extension; we skip hidden files and folders (macOS '._x.jpg' resource
    # forks, '.ipynb_checkpoints') and __MACOSX, which are never images.
    return name.startswith('.') or name in _JUNK


def printable(path):
    """``path`` for messages: bytes of its name that are not UTF-8 shown as \\xNN."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def _is_utf8(path):
    try:
        path.encode('utf-8')
        return True
    except UnicodeEncodeError:  # os.walk gave its undecodable bytes as surrogates
        return False


_SKIPPED_NAMES = set()  # paths warned about once per process


def _skip_name(path):
    if path not in _SKIPPED_NAMES:
        _SKIPPED_NAMES.add(path)
        logger.warning('skipping %s: its name is not valid UTF-8 (rename it to use it)',
                       printable(path))


def _walk_images(folder):
    """Yields the image files under folder, recursively, in no particular order.

    Deviation: files and folders whose names are not valid UTF-8 are skipped
    with a warning, like unreadable images: TensorFlow's string tensors,
    index.html and the logs hold UTF-8 text only.
    """
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_hidden(d)]
        for name in files:
            if not is_hidden(name) and is_image_file(name):
                path = os.path.join(root, name)
                if _is_utf8(path):
                    yield path
                else:
                    _skip_name(path)


def list_images(folder, max_dataset_size=0):
    """The image files under ``folder`` (recursively), sorted; [] if it is missing.

    ``max_dataset_size`` > 0 keeps the first that many. Deviation: the official
    make_dataset truncates in os.walk order and sorts afterwards, which depends
    on the file system; we sort first, so the subset is the same everywhere.
    """
    paths = sorted(_walk_images(folder))
    return paths[:max_dataset_size] if max_dataset_size > 0 else paths


def has_images(folder):
    return next(_walk_images(folder), None) is not None


def no_images_message(folder):
    if not os.path.isdir(folder):
        return f'{folder} does not exist'
    return f'no images in {folder} (looked for {", ".join(IMAGE_EXTENSIONS)} files, any case)'


def layout_problem(root, layout, split=None):
    """Why ``root`` does not hold ``layout`` (for one split, or all splits), or None."""
    if layout == ANY:
        return None if has_images(root) else no_images_message(root)
    if layout == UNALIGNED:
        splits = [split] if split else ['train', 'test']
        groups = [[s + 'A'] for s in splits] + [[s + 'B'] for s in splits]
    elif layout == ALIGNED:
        groups = [[split]] if split else [['train'], ['test', 'val']]
    else:  # COLORIZATION: <split>/, else both domains of an unaligned folder
        groups = [[split or 'train', (split or 'train') + 'A', (split or 'train') + 'B']]
    for group in groups:
        if not any(has_images(os.path.join(root, sub)) for sub in group):
            return no_images_message(os.path.join(root, group[0]))
    return None


def layout_hint(root, layout):
    """The folders to create by hand, e.g. 'datasets/x/{trainA,trainB,testA,testB}/'."""
    return f'{os.path.normpath(root)}/{LAYOUT_HINTS[layout]}'


def check_folder(root, layout, split='train'):
    """Returns ``root`` if it holds images for ``split`` in ``layout``; else raises
    a DatasetError naming the empty or missing folder."""
    if not os.path.isdir(root):
        raise DatasetError(f'no dataset folder {root}')
    problem = layout_problem(root, layout, split)
    if problem:
        raise DatasetError(f'{problem}; the {layout} layout is {layout_hint(root, layout)}')
    return root


def ground_truth_pairs(folder, split='test'):
    """[(path in <split>A, path in <split>B)] for the files of the same relative
    name in both domains, sorted.

    The scoring contract of shapes2stripes: sample.py translates
    ``testA/NNNN.png`` with G_A and compares the result with
    ``testB/NNNN.png``, the same shape striped (and testB -> testA for G_B).
    Works for any unaligned folder whose test domains share file names.
    """
    a_dir, b_dir = os.path.join(folder, split + 'A'), os.path.join(folder, split + 'B')
    b_paths = {os.path.relpath(p, b_dir): p for p in list_images(b_dir)}
    return [(a, b_paths[os.path.relpath(a, a_dir)]) for a in list_images(a_dir)
            if os.path.relpath(a, a_dir) in b_paths]
