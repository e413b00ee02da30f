"""Sample grids and HTML pages of images, composed with numpy and PIL.

train.py feeds the grids to an image summary through a placeholder (nothing
is added to the graph per step) and writes them to samples/; sample.py
writes them with an index.html.
"""

import html
import os
import urllib.parse

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cyclegan_tf.data import pipeline
from cyclegan_tf.running import fileio

BACKGROUND = (255, 255, 255)
LABEL_HEIGHT = 12  # pixels of the strip above each row holding its labels


def save_image(image, path):
    """Writes ``image`` (float [H, W], [H, W, 1] or [H, W, 3] in [-1, 1]) to
    ``path``, format from its extension, atomically: a reader sees no half file."""
    array = pipeline.to_uint8(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or array.ndim == 3 and array.shape[-1] == 3):
        raise ValueError(f'cannot save an image of shape {np.shape(image)}')
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if image_format is None:
        raise ValueError(f'cannot save an image as {path}: unknown file extension')
    with fileio.atomic_write(path) as f:
        Image.fromarray(array).save(f, format=image_format)


def as_rgb(image):
    """uint8 [H, W, 3] of a float image [H, W, 1 or 3] in [-1, 1]."""
    array = pipeline.to_uint8(image)
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f'cannot show an image of shape {np.shape(image)}')
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def grid(rows, labels=None, *, pad=2):
    """One image of ``rows`` of images, each row under a strip of its labels.

    Args:
      rows: list of rows, each a list of float images [h, w, 1 or 3] in
        [-1, 1]; sizes may differ (each cell is as large as its column's
        widest and its row's tallest image).
      labels: None, or one list of strings per row, one per image.
      pad: pixels between cells.
    Returns:
      uint8 [H, W, 3].
    """
    cells = [[as_rgb(image) for image in row] for row in rows]
    columns = max(len(row) for row in cells)
    widths = [max(row[c].shape[1] for row in cells if c < len(row)) for c in range(columns)]
    strip = LABEL_HEIGHT if labels else 0
    heights = [strip + max(image.shape[0] for image in row) for row in cells]
    canvas = Image.new('RGB', (sum(widths) + pad * (columns + 1),
                               sum(heights) + pad * (len(rows) + 1)), BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    y = pad
    for r, row in enumerate(cells):
        x = pad
        for c, image in enumerate(row):
            if labels:
                draw.text((x + 1, y), str(labels[r][c]), fill=(0, 0, 0), font=font)
            canvas.paste(Image.fromarray(image), (x, y + strip))
            x += widths[c] + pad
        y += heights[r] + pad
    return np.asarray(canvas)


def save_png(array, path):
    """Writes uint8 [H, W, 3] to ``path`` atomically."""
    with fileio.atomic_write(path) as f:
        Image.fromarray(array).save(f, format='PNG')


def write_text(path, text):
    """Writes the string ``text`` to ``path`` atomically."""
    with fileio.atomic_write(path, 'w') as f:
        f.write(text)


def write_html(path, title, sections, notes=(), *, width=256):
    """An index page of image tables.

    Args:
      path: the page's path; image paths are relative to its folder.
      title: the page's title.
      sections: list of (heading, column names, rows); each row is
        (name, [image paths, one per column; '' for none]).
      notes: lines of text shown under the title.
      width: the width of the images on the page, in pixels.
    """
    parts = [f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_text(title)}'
             f'</title>\n<style>body{{font-family:sans-serif}} td,th{{padding:4px;'
             f'text-align:center}} img{{image-rendering:pixelated}}</style>'
             f'</head>\n<body><h1>{_text(title)}</h1>']
    parts += [f'<p>{_text(line)}</p>' for line in notes]
    for heading, columns, rows in sections:
        parts.append(f'<h2>{_text(heading)}</h2>\n<table>\n<tr><th>name</th>'
                     + ''.join(f'<th>{_text(c)}</th>' for c in columns) + '</tr>')
        for name, images in rows:
            cells = ''.join(f'<td><img src="{_link(p)}" alt="{_text(p)}" width="{int(width)}">'
                            f'</td>' if p else '<td></td>' for p in images)
            parts.append(f'<tr><td>{_text(name)}</td>{cells}</tr>')
        parts.append('</table>')
    parts.append('</body></html>\n')
    with fileio.atomic_write(path, 'w') as f:
        f.write('\n'.join(parts))


def _text(text):
    """HTML of ``text``; bytes of a file name that are not UTF-8 (surrogates
    from os.listdir) are shown as \\xNN instead of failing to encode."""
    text = str(text)
    try:
        text = os.fsencode(text).decode('utf-8', 'backslashreplace')
    except UnicodeEncodeError:  # a surrogate that no file name makes
        text = text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return html.escape(text)


def _link(path):
    """An attribute value that links to the file ``path``: as it is when it is
    UTF-8, else its bytes percent-encoded (what a browser sends for them)."""
    try:
        path.encode('utf-8')
        return html.escape(path)
    except UnicodeEncodeError:
        return html.escape(urllib.parse.quote(os.fsencode(path)))
