"""The procedurally generated mini-world (2D part): small RGB images of simple shape classes.

Deterministic from a seed: an item's parameters come from a numpy Generator seeded by
(seed, split, index), so any item can be rebuilt alone and two builds give identical bytes.

Splits
- ``train`` / ``val``: the nominal distribution (the ImageNet train/val analogue);
- ``v2``: the same generator with shifted parameters (smaller, off-centre, darker shapes on brighter,
  more saturated backgrounds): the ImageNetV2 analogue, a mild distribution shift with identical classes;
- ``laion``: another style (patterned backgrounds, outlined shapes) with captions, of which a configured
  fraction name the wrong class or are ambiguous (two classes, or none): the LAION analogue that curation
  must clean. Its manifest keeps the ground truth (``true_label_id``, ``caption_noise``) for measuring that.
- ``web``: the laion style with correct labels and other items: the "web data" the tiny CLIP is trained on
  besides ``train`` (a real CLIP has seen LAION-like images; without them its zero-shot check is blind there).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..io import sha256_bytes, write_bytes
from ..seeding import numpy_rng
from .manifest import validate_manifest

ALL_CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "crescent", "arrow")
SPLITS = ("train", "val", "v2", "laion", "web")
SUPERSAMPLE = 4
COLOUR_NAMES = ((0.04, "red"), (0.11, "orange"), (0.19, "yellow"), (0.45, "green"), (0.55, "cyan"),
                (0.72, "blue"), (0.83, "purple"), (0.95, "pink"), (1.01, "red"))
PATTERNS = ("striped", "checkered", "dotted", "plain")
CAPTION_TEMPLATES = (
    "{colour} {shape} clipart on a {pattern} background",
    "vector icon of a {shape}",
    "{shape} sticker, {colour}, flat design",
    "a {colour} {shape} shape",
    "cute {shape} logo for kids",
)
AMBIGUOUS_TWO = "{shape} and {other} pattern, geometric shapes"
AMBIGUOUS_NONE = ("abstract geometric art, {colour}", "minimalist wallpaper with {pattern} texture")


@dataclass(frozen=True)
class ItemParams:
    label: int
    cx: float  # centre, fraction of the image size
    cy: float
    radius: float  # fraction of the image size
    rotation: float  # degrees
    colour: tuple[int, int, int]
    bg_a: tuple[int, int, int]
    bg_b: tuple[int, int, int]
    bg_angle: float
    noise: float
    pattern: str  # plain gradient, or the laion style's pattern
    outline: tuple[int, int, int] | None
    hue: float


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def colour_name(hue: float) -> str:
    return next(name for bound, name in COLOUR_NAMES if hue % 1.0 < bound)


def sample_params(rng: np.random.Generator, split: str, label: int) -> ItemParams:
    """Draw one item's parameters for ``split`` (the only place where the splits differ)."""
    u = rng.uniform
    if split in ("train", "val"):
        radius, off, s_val, bg_v, bg_s = u(0.24, 0.40), 0.13, u(0.65, 1.0), (0.15, 0.55), (0.0, 0.35)
    elif split == "v2":
        radius, off, s_val, bg_v, bg_s = u(0.19, 0.32), 0.22, u(0.45, 0.8), (0.45, 0.85), (0.3, 0.7)
    elif split in ("laion", "web"):
        radius, off, s_val, bg_v, bg_s = u(0.22, 0.40), 0.15, u(0.6, 1.0), (0.6, 0.95), (0.1, 0.5)
    else:
        raise ValueError(f"unknown mini-world split '{split}' (expected one of {', '.join(SPLITS)})")
    hue = u(0.0, 1.0)
    colour = _hsv(hue, u(0.6, 1.0), s_val)
    bg_hue = u(0.0, 1.0)
    bg_a = _hsv(bg_hue, u(*bg_s), u(*bg_v))
    bg_b = _hsv(bg_hue + u(-0.15, 0.15), u(*bg_s), u(*bg_v))
    pattern, outline = "gradient", None
    if split in ("laion", "web"):
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        if rng.uniform() < 0.6:
            outline = _hsv(hue + 0.5, 0.8, 0.25)
    return ItemParams(
        label=label,
        cx=0.5 + u(-off, off),
        cy=0.5 + u(-off, off),
        radius=radius,
        rotation=u(0.0, 360.0),
        colour=colour,
        bg_a=bg_a,
        bg_b=bg_b,
        bg_angle=u(0.0, 2 * math.pi),
        noise=u(2.0, 6.0),
        pattern=pattern,
        outline=outline,
        hue=hue,
    )


def _regular(cx, cy, r, rot, n, radii=(1.0,)):
    pts = []
    for k in range(n * len(radii)):
        a = math.radians(rot) + 2 * math.pi * k / (n * len(radii)) - math.pi / 2
        rr = r * radii[k % len(radii)]
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _rotated(cx, cy, rot, pts):
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def shape_mask(name: str, size: int, cx: float, cy: float, r: float, rot: float) -> Image.Image:
    """An 'L' mask (255 inside) of one shape on a ``size`` canvas; centre/radius in pixels."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == "circle":
        d.ellipse(box, fill=255)
    elif name == "square":
        d.polygon(_regular(cx, cy, r, rot + 45, 4), fill=255)
    elif name == "triangle":
        d.polygon(_regular(cx, cy, r, rot, 3), fill=255)
    elif name == "star":
        d.polygon(_regular(cx, cy, r, rot, 5, radii=(1.0, 0.45)), fill=255)
    elif name == "cross":
        w = 0.33 * r
        arm = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
               (-w, -w)]
        d.polygon(_rotated(cx, cy, rot, arm), fill=255)
    elif name == "ring":
        d.ellipse(box, fill=255)
        ri = 0.55 * r
        d.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif name == "diamond":
        d.polygon(_rotated(cx, cy, rot, [(0, -r), (0.55 * r, 0), (0, r), (-0.55 * r, 0)]), fill=255)
    elif name == "hexagon":
        d.polygon(_regular(cx, cy, r, rot, 6), fill=255)
    elif name == "crescent":
        d.ellipse(box, fill=255)
        a = math.radians(rot)
        ox, oy = cx + 0.45 * r * math.cos(a), cy + 0.45 * r * math.sin(a)
        d.ellipse((ox - 0.85 * r, oy - 0.85 * r, ox + 0.85 * r, oy + 0.85 * r), fill=0)
    elif name == "arrow":
        pts = [(-r, -0.22 * r), (0.2 * r, -0.22 * r), (0.2 * r, -0.6 * r), (r, 0), (0.2 * r, 0.6 * r),
               (0.2 * r, 0.22 * r), (-r, 0.22 * r)]
        d.polygon(_rotated(cx, cy, rot, pts), fill=255)
    else:
        raise ValueError(f"unknown mini-world shape '{name}' (known: {', '.join(ALL_CLASSES)})")
    return m


def _background(p: ItemParams, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(p.bg_angle) + (yy - 0.5) * math.sin(p.bg_angle), 0, 1)[..., None]
    a, b = np.array(p.bg_a, np.float64), np.array(p.bg_b, np.float64)
    img = a * (1 - t) + b * t
    period = size / 6.0
    if p.pattern == "striped":
        mask = (np.floor((xx + yy) * size / period) % 2 == 0)[..., None]
        img = np.where(mask, img, img * 0.7)
    elif p.pattern == "checkered":
        mask = ((np.floor(xx * size / period) + np.floor(yy * size / period)) % 2 == 0)[..., None]
        img = np.where(mask, img, img * 0.75)
    elif p.pattern == "dotted":
        fx, fy = (xx * size / period) % 1 - 0.5, (yy * size / period) % 1 - 0.5
        mask = ((fx**2 + fy**2) < 0.06)[..., None]
        img = np.where(mask, img * 0.6, img)
    return img


def render(params: ItemParams, classes: tuple[str, ...] | list[str], image_size: int,
           rng: np.random.Generator) -> np.ndarray:
    """Render one item to a uint8 HxWx3 array (supersampled, then box-filtered down)."""
    big = image_size * SUPERSAMPLE
    bg = _background(params, big)
    name = classes[params.label]
    cx, cy, r = params.cx * big, params.cy * big, params.radius * big
    mask = np.asarray(shape_mask(name, big, cx, cy, r, params.rotation), np.float64)[..., None] / 255.0
    img = bg * (1 - mask) + np.array(params.colour, np.float64) * mask
    if params.outline is not None:
        inner = shape_mask(name, big, cx, cy, r * 0.82, params.rotation)
        inner_m = np.asarray(inner, np.float64)[..., None] / 255.0
        band = np.clip(mask - inner_m, 0, 1)
        img = img * (1 - band) + np.array(params.outline, np.float64) * band
    small = img.reshape(image_size, SUPERSAMPLE, image_size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    small = small + rng.normal(0.0, params.noise, small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _caption(rng: np.random.Generator, p: ItemParams, classes, wrong: float, ambiguous: float):
    """Return (caption, caption_label, noise kind); caption_label is -1 when the caption names no single class."""
    colour = colour_name(p.hue)
    u = rng.uniform()
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    if u < wrong:
        other = int((p.label + 1 + rng.integers(len(classes) - 1)) % len(classes))
        return template.format(colour=colour, shape=classes[other], pattern=p.pattern), other, "wrong"
    if u < wrong + ambiguous:
        if rng.uniform() < 0.5:
            other = int((p.label + 1 + rng.integers(len(classes) - 1)) % len(classes))
            return AMBIGUOUS_TWO.format(shape=classes[p.label], other=classes[other]), -1, "ambiguous"
        t = AMBIGUOUS_NONE[int(rng.integers(len(AMBIGUOUS_NONE)))]
        return t.format(colour=colour, pattern=p.pattern), -1, "ambiguous"
    return template.format(colour=colour, shape=classes[p.label], pattern=p.pattern), p.label, "clean"


def build_split(out_dir: str | Path, split: str, *, seed: int, classes: list[str], per_class: int,
                image_size: int = 32, dataset: str | None = None, laion_wrong: float = 0.15,
                laion_ambiguous: float = 0.10, prompt_template: str = "a photo of a {class}") -> pd.DataFrame:
    """Render ``per_class`` images of every class for ``split`` into ``out_dir/images`` and return the manifest.

    Items interleave the classes (item i has label i mod C) so any prefix is nearly class-balanced.
    """
    out_dir = Path(out_dir)
    dataset = dataset or f"miniworld_{split}"
    classes = tuple(classes)
    rows = []
    for i in range(per_class * len(classes)):
        label = i % len(classes)
        rng = numpy_rng("miniworld", seed, split, i)
        params = sample_params(rng, split, label)
        arr = render(params, classes, image_size, rng)
        item_id = f"{split}-{i:06d}"
        rel = f"images/{item_id}.png"
        png = _png_bytes(arr)
        write_bytes(out_dir / rel, png)
        row = {
            "item_id": item_id,
            "label_id": label,
            "label_name": classes[label],
            "prompt": prompt_template.format(**{"class": classes[label]}),
            "path": rel,
            "split": split,
            "source": "miniworld",
            "sha256": sha256_bytes(png),
            "width": image_size,
            "height": image_size,
        }
        if split == "laion":
            caption, cap_label, kind = _caption(rng, params, classes, laion_wrong, laion_ambiguous)
            row.update(
                caption=caption,
                label_id=cap_label,
                label_name=classes[cap_label] if cap_label >= 0 else "",
                prompt=prompt_template.format(**{"class": classes[cap_label]}) if cap_label >= 0 else "",
                true_label_id=label,
                caption_noise=kind,
            )
        rows.append(row)
    df = pd.DataFrame(rows)
    validate_manifest(df, dataset)
    return df


def _png_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    # no timestamps or other varying chunks: identical pixels give identical bytes
    Image.fromarray(arr, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# WordNet-style glosses of the mini-world classes: the text filter's query is "{name} which is {definition}"
DEFINITIONS = {
    "circle": "a plane figure bounded by a curve whose points are equidistant from the centre",
    "square": "a plane figure with four equal sides and four right angles",
    "triangle": "a plane figure with three straight sides and three angles",
    "star": "a plane figure with five points radiating from a centre",
    "cross": "a figure of two straight bars crossing at right angles",
    "ring": "a circular band with a round hole in the middle",
    "diamond": "a square figure standing on one of its corners",
    "hexagon": "a plane figure with six straight sides and six angles",
    "crescent": "the curved shape of the moon in its first or last quarter",
    "arrow": "a pointer shaped like a shaft with a triangular head",
}
