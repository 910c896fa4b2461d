"""A deterministic procedural image generator for the world's concepts (numpy only).

Objects are drawn from signed distance functions: each silhouette is a function of a pixel's
position in the object's own frame (unit radius, rotated), each surface pattern a function of its
position in a rotated pattern frame, and coverage is ``clip(0.5 - distance_in_pixels, 0, 1)``, which
anti-aliases every edge. A batch of images is drawn in one pass of array operations per object
layer, so tens of thousands of images take seconds.

Four distributions:

``objects``
    One main object per image, on a plain or cluttered background: the ImageNet analogue, used to
    train the hub and held out for evaluation.
``scenes``
    Two to four smaller objects, overlapping a little, over textured backgrounds: the COCO
    analogue and the default probe distribution.
``noise``
    Dead leaves: stacked discs of random colours with power-law radii, no concept at all.
``shifted``
    Small off-centre objects under a colour cast, at lower contrast and with sensor noise: the
    same concepts in another palette and scale.

Every function takes a ``numpy.random.Generator`` and is a pure function of it: the same
generator state gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from probelog_world.concepts import COLOURS, PATTERNS, SHAPES

#: Side of every image in the world, in pixels.
IMAGE_SIZE = 48

#: Images drawn per array pass; bounds the working memory (a few MB per layer).
_CHUNK = 256

_COLOUR_RGB = np.array(list(COLOURS.values()), dtype=np.float32)
#: Largest random rotation per shape (radians): shapes whose identity depends on being upright
#: (a square turned 45 degrees is a diamond) turn only a little.
_MAX_ROTATION = np.array(
    [{"circle": np.pi, "star": np.pi, "crescent": np.pi}.get(s, 0.3) for s in SHAPES],
    dtype=np.float32,
)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def _f32(x: npt.ArrayLike) -> F32:
    return np.asarray(x, dtype=np.float32)


@dataclass
class ObjectLayer:
    """One object in each image of a batch; every field has shape (n,) unless noted.

    Attributes
    ----------
    present : ndarray of bool
        Images without an object in this layer are left untouched.
    colour, pattern, shape : ndarray of int64
        Indices into ``COLOURS``, ``PATTERNS`` and ``SHAPES``.
    cx, cy, radius : ndarray of float32
        Centre and radius in pixels.
    angle : ndarray of float32
        Rotation of the silhouette, radians.
    pattern_angle, period, phase_x, phase_y : ndarray of float32
        Orientation, period (pixels) and offset (pixels) of the surface pattern.
    rgb : ndarray of shape (n, 3), float32
        The object's (jittered) colour in [0, 1].
    """

    present: npt.NDArray[np.bool_]
    colour: I64
    pattern: I64
    shape: I64
    cx: F32
    cy: F32
    radius: F32
    angle: F32
    pattern_angle: F32
    period: F32
    phase_x: F32
    phase_y: F32
    rgb: F32


def sample_layer(
    rng: np.random.Generator,
    attributes: I64,
    cx: F32,
    cy: F32,
    radius: F32,
    present: npt.NDArray[np.bool_] | None = None,
) -> ObjectLayer:
    """Draw the free parameters (rotation, pattern frame, colour jitter) of one object per image.

    Parameters
    ----------
    rng : numpy.random.Generator
    attributes : ndarray of shape (n, 3), int64
        ``(colour, pattern, shape)`` per image, as in ``ConceptSet.fine_attributes``.
    cx, cy, radius : ndarray of shape (n,), float32
        Placement in pixels.
    present : ndarray of shape (n,), bool, optional
        Which images get an object; all by default.

    Returns
    -------
    ObjectLayer
    """
    n = attributes.shape[0]
    colour, pattern, shape = (attributes[:, i].astype(np.int64) for i in range(3))
    f = np.float32
    angle = (rng.uniform(-1.0, 1.0, n) * _MAX_ROTATION[shape]).astype(f)
    # Patterns scale with the object but never below ~3.5 px, under which stripes alias away.
    period = np.maximum(3.6, radius * rng.uniform(0.26, 0.38, n)).astype(f)
    brightness = rng.uniform(0.82, 1.08, (n, 1))
    rgb = np.clip(_COLOUR_RGB[colour] * brightness + rng.normal(0.0, 0.035, (n, 3)), 0.0, 1.0)
    return ObjectLayer(
        present=np.ones(n, dtype=bool) if present is None else present.astype(bool),
        colour=colour,
        pattern=pattern,
        shape=shape,
        cx=cx.astype(f),
        cy=cy.astype(f),
        radius=radius.astype(f),
        angle=angle,
        pattern_angle=rng.uniform(0.0, np.pi, n).astype(f),
        period=period,
        phase_x=rng.uniform(0.0, 16.0, n).astype(f),
        phase_y=rng.uniform(0.0, 16.0, n).astype(f),
        rgb=rgb.astype(f),
    )


# --------------------------------------------------------------------------------------------
# Silhouettes: signed distance in units of the object's radius, negative inside.


def _box(u: F32, v: F32, hu: float, hv: float) -> F32:
    qu = np.abs(u) - hu
    qv = np.abs(v) - hv
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    inside = np.minimum(np.maximum(qu, qv), 0.0)
    return _f32(outside + inside)


def _convex_polygon(u: F32, v: F32, vertices: list[tuple[float, float]]) -> F32:
    """Max over edges of the signed distance to the edge's line (exact on the edges)."""
    pts = np.array(vertices, dtype=np.float32)
    centre = pts.mean(axis=0)
    out = np.full(u.shape, -np.inf, dtype=np.float32)
    for a, b in zip(pts, np.roll(pts, -1, axis=0), strict=True):
        normal = np.array([b[1] - a[1], a[0] - b[0]], dtype=np.float32)
        normal /= np.linalg.norm(normal)
        if float(normal @ (centre - a)) > 0:
            normal = -normal
        out = np.maximum(out, (u - a[0]) * normal[0] + (v - a[1]) * normal[1])
    return out


def _circle(u: F32, v: F32, cu: float, cv: float, r: float) -> F32:
    return (np.hypot(u - cu, v - cv) - r).astype(np.float32)


def _sdf_circle(u: F32, v: F32) -> F32:
    return _circle(u, v, 0.0, 0.0, 0.92)


def _sdf_square(u: F32, v: F32) -> F32:
    return _box(u, v, 0.74, 0.74)


def _sdf_triangle(u: F32, v: F32) -> F32:
    # Image coordinates: v grows downwards, so the apex is at negative v.
    return _convex_polygon(u, v, [(0.0, -1.02), (0.95, 0.62), (-0.95, 0.62)])


def _star_kites() -> list[list[tuple[float, float]]]:
    """A five-pointed star as five convex kites (centre, inner, tip, inner) round a pentagon."""
    outer, inner = 1.0, 0.45
    kites = []
    for k in range(5):
        tip = -np.pi / 2 + k * 2 * np.pi / 5
        left, right = tip - np.pi / 5, tip + np.pi / 5
        kites.append(
            [
                (0.0, 0.0),
                (inner * float(np.cos(left)), inner * float(np.sin(left))),
                (outer * float(np.cos(tip)), outer * float(np.sin(tip))),
                (inner * float(np.cos(right)), inner * float(np.sin(right))),
            ]
        )
    return kites


_STAR_KITES = _star_kites()


def _sdf_star(u: F32, v: F32) -> F32:
    # The inner pentagon covers the spokes where two kites meet, which would otherwise show as
    # half-covered seams.
    out = _convex_polygon(u, v, [kite[1] for kite in _STAR_KITES])
    for kite in _STAR_KITES:
        out = np.minimum(out, _convex_polygon(u, v, kite))
    return out


def _sdf_cross(u: F32, v: F32) -> F32:
    return np.minimum(_box(u, v, 0.92, 0.3), _box(u, v, 0.3, 0.92))


def _sdf_diamond(u: F32, v: F32) -> F32:
    a, b = 0.64, 0.98
    return _f32((np.abs(u) / a + np.abs(v) / b - 1.0) * (a * b / np.hypot(a, b)))


def _sdf_crescent(u: F32, v: F32) -> F32:
    return np.maximum(_circle(u, v, 0.0, 0.0, 0.94), -_circle(u, v, 0.42, -0.2, 0.76))


def _sdf_heart(u: F32, v: F32) -> F32:
    lobes = np.minimum(_circle(u, v, -0.43, -0.3, 0.5), _circle(u, v, 0.43, -0.3, 0.5))
    tip = _convex_polygon(u, v, [(-0.9, -0.16), (0.9, -0.16), (0.0, 0.96)])
    return np.minimum(lobes, tip)


_SDF = {
    "circle": _sdf_circle,
    "square": _sdf_square,
    "triangle": _sdf_triangle,
    "star": _sdf_star,
    "cross": _sdf_cross,
    "diamond": _sdf_diamond,
    "crescent": _sdf_crescent,
    "heart": _sdf_heart,
}
if tuple(_SDF) != SHAPES:  # pragma: no cover - guards the vocabulary against drift
    raise AssertionError("every shape needs a signed distance function")

# --------------------------------------------------------------------------------------------
# Patterns: coverage of the pattern colour in [0, 1], anti-aliased.


def _square_wave(phase: F32, period: F32) -> F32:
    """Anti-aliased square wave from ``sin(phase)``: a transition about one pixel wide."""
    return _f32(np.clip(0.5 + np.sin(phase) * (period / (2 * np.pi)), 0.0, 1.0))


def _pattern_mask(pattern: str, pu: F32, pv: F32, radial: F32, period: F32, phase: F32) -> F32:
    two_pi = np.float32(2 * np.pi)
    if pattern == "plain":
        return np.zeros_like(pu)
    if pattern == "striped":
        return _square_wave(two_pi * pu / period, period)
    if pattern == "dotted":
        fu = np.mod(pu / period, 1.0) - 0.5
        fv = np.mod(pv / period, 1.0) - 0.5
        dist = np.hypot(fu, fv) * period
        return np.clip(0.3 * period - dist + 0.5, 0.0, 1.0).astype(np.float32)
    if pattern == "checkered":
        # XOR of two square waves: squares of side 0.6 period.
        cell = period * 1.2
        a = _square_wave(two_pi * pu / cell, cell)
        b = _square_wave(two_pi * pv / cell, cell)
        return (a + b - 2.0 * a * b).astype(np.float32)
    if pattern == "zigzag":
        wave = pu / (period * 1.3)
        tri = 2.0 * np.abs(wave - np.floor(wave + 0.5))
        return _square_wave(two_pi * (pv + tri * period * 0.7) / period, period)
    if pattern == "ringed":
        return _square_wave(two_pi * radial / period + phase, period)
    raise AssertionError(pattern)  # pragma: no cover


if set(PATTERNS) != {"plain", "striped", "dotted", "checkered", "zigzag", "ringed"}:
    raise AssertionError("every pattern needs a mask")  # pragma: no cover


def _pattern_rgb(rgb: F32) -> F32:
    """Pattern colour: a darker shade of the object's colour, or a lighter one for dark colours."""
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    darker = rgb * 0.38
    lighter = rgb + (1.0 - rgb) * 0.45
    return np.where(luminance[:, None] > 0.22, darker, lighter).astype(np.float32)


_GRID_CACHE: dict[int, tuple[F32, F32]] = {}


def _grid(size: int) -> tuple[F32, F32]:
    if size not in _GRID_CACHE:
        centres = np.arange(size, dtype=np.float32) + 0.5
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        _GRID_CACHE[size] = (xs, ys)
    return _GRID_CACHE[size]


def paint_layer(canvas: F32, layer: ObjectLayer) -> F32:
    """Composite one object per image over ``canvas``, in place.

    Parameters
    ----------
    canvas : ndarray of shape (n, size, size, 3), float32
        RGB in [0, 1]; modified in place.
    layer : ObjectLayer
        One object per image (``layer.present`` selects which images get one).

    Returns
    -------
    ndarray of shape (n, size, size), float32
        The object's coverage in [0, 1] per pixel (0 where ``present`` is false).
    """
    n, size = canvas.shape[0], canvas.shape[1]
    xs, ys = _grid(size)
    dx = xs[None] - layer.cx[:, None, None]
    dy = ys[None] - layer.cy[:, None, None]
    cos, sin = np.cos(layer.angle)[:, None, None], np.sin(layer.angle)[:, None, None]
    radius = layer.radius[:, None, None]
    u = (cos * dx + sin * dy) / radius
    v = (-sin * dx + cos * dy) / radius

    sdf = np.empty((n, size, size), dtype=np.float32)
    for index, name in enumerate(SHAPES):
        rows = np.flatnonzero(layer.shape == index)
        if rows.size:
            sdf[rows] = _SDF[name](u[rows], v[rows])
    coverage = np.clip(0.5 - sdf * radius, 0.0, 1.0) * layer.present[:, None, None]

    pcos = np.cos(layer.pattern_angle)[:, None, None]
    psin = np.sin(layer.pattern_angle)[:, None, None]
    pu = pcos * dx + psin * dy + layer.phase_x[:, None, None]
    pv = -psin * dx + pcos * dy + layer.phase_y[:, None, None]
    radial = np.hypot(dx, dy)
    period = layer.period[:, None, None]
    mask = np.zeros((n, size, size), dtype=np.float32)
    for index, name in enumerate(PATTERNS):
        rows = np.flatnonzero(layer.pattern == index)
        if rows.size and name != "plain":
            mask[rows] = _pattern_mask(
                name, pu[rows], pv[rows], radial[rows], period[rows], layer.phase_x[rows, None, None]
            )

    base = layer.rgb[:, None, None, :]
    accent = _pattern_rgb(layer.rgb)[:, None, None, :]
    # Soft light from the top left, so objects read as solid rather than as flat stickers.
    light = 1.0 + 0.08 * np.clip(-(u + v), -1.5, 1.5)[..., None]
    colour = (base * (1.0 - mask[..., None]) + accent * mask[..., None]) * light
    alpha = coverage[..., None]
    canvas *= 1.0 - alpha
    canvas += np.clip(colour, 0.0, 1.0) * alpha
    return _f32(coverage)


# --------------------------------------------------------------------------------------------
# Backgrounds


def _tinted(rng: np.random.Generator, n: int, grey: tuple[float, float], saturation: float) -> F32:
    """Random low-saturation colours, shape (n, 3)."""
    level = rng.uniform(*grey, (n, 1))
    hue = rng.uniform(-1.0, 1.0, (n, 3))
    hue -= hue.mean(axis=1, keepdims=True)
    return np.clip(level + hue * rng.uniform(0.0, saturation, (n, 1)), 0.0, 1.0).astype(np.float32)


_UPSAMPLE_CACHE: dict[tuple[int, int], F32] = {}


def _upsample_matrix(size: int, cells: int) -> F32:
    """Linear-interpolation matrix of shape (size, cells) from cell centres to pixel centres."""
    key = (size, cells)
    if key not in _UPSAMPLE_CACHE:
        pos = np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0.0, cells - 1.0)
        lo = np.minimum(np.floor(pos).astype(int), cells - 2)
        frac = pos - lo
        mat = np.zeros((size, cells), dtype=np.float32)
        mat[np.arange(size), lo] = 1.0 - frac
        mat[np.arange(size), lo + 1] = frac
        _UPSAMPLE_CACHE[key] = mat
    return _UPSAMPLE_CACHE[key]


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> F32:
    """Smooth random fields in [-1, 1], shape (n, size, size, 3): bilinear upsampled noise."""
    coarse = rng.uniform(-1.0, 1.0, (n, cells, cells, 3)).astype(np.float32)
    mat = _upsample_matrix(size, cells)
    return _f32(np.einsum("ia,nabc,jb->nijc", mat, coarse, mat, optimize=True))


def plain_backgrounds(rng: np.random.Generator, n: int, size: int) -> F32:
    """Nearly plain backgrounds: one tint, a faint gradient and faint noise.

    Returns
    -------
    ndarray of shape (n, size, size, 3), float32
    """
    xs, ys = _grid(size)
    base = _tinted(rng, n, (0.3, 0.74), 0.2)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    slope = rng.uniform(0.0, 0.08, n) / size
    ramp = (
        np.cos(angle)[:, None, None] * (xs - size / 2) + np.sin(angle)[:, None, None] * (ys - size / 2)
    ) * slope[:, None, None]
    canvas = base[:, None, None, :] + ramp[..., None] + rng.normal(0.0, 0.015, (n, size, size, 3))
    return _f32(np.clip(canvas, 0.0, 1.0))


def textured_backgrounds(rng: np.random.Generator, n: int, size: int) -> F32:
    """Cluttered backgrounds: smooth colour noise plus broad stripes, tiles or blotches.

    Returns
    -------
    ndarray of shape (n, size, size, 3), float32
    """
    xs, ys = _grid(size)
    base = _tinted(rng, n, (0.25, 0.75), 0.35)
    canvas = base[:, None, None, :] + _smooth_noise(rng, n, size, 6) * rng.uniform(0.04, 0.14, (n, 1, 1, 1))
    kind = rng.integers(0, 4, n)  # 0 nothing more, 1 broad stripes, 2 tiles, 3 blotches
    other = _tinted(rng, n, (0.2, 0.8), 0.4)[:, None, None, :] - base[:, None, None, :]
    strength = rng.uniform(0.15, 0.35, (n, 1, 1, 1))
    angle = rng.uniform(0.0, np.pi, (n, 1, 1))
    period = rng.uniform(9.0, 18.0, (n, 1, 1)) * size / 48
    along = np.cos(angle) * xs + np.sin(angle) * ys
    stripes = _square_wave(2 * np.pi * along / period, period)
    tiles = np.minimum(
        np.abs(np.mod(xs[None] / period, 1.0) - 0.5), np.abs(np.mod(ys[None] / period, 1.0) - 0.5)
    )
    tile_lines = np.clip(1.5 - (0.5 - tiles) * period, 0.0, 1.0)
    blotch = np.clip(_smooth_noise(rng, n, size, 4)[..., 0] * 3.0, 0.0, 1.0)
    pattern = np.select(
        [kind[:, None, None] == 1, kind[:, None, None] == 2, kind[:, None, None] == 3],
        [stripes, tile_lines, blotch],
        0.0,
    )
    canvas = canvas + other * strength * pattern[..., None]
    canvas += rng.normal(0.0, 0.02, canvas.shape)
    return _f32(np.clip(canvas, 0.0, 1.0))


def to_uint8(canvas: F32) -> U8:
    """``[0, 1]`` floats to uint8 RGB, rounding."""
    return np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Distributions


def render_objects(rng: np.random.Generator, attributes: I64, size: int = IMAGE_SIZE) -> U8:
    """Single objects, one per image (the ImageNet analogue).

    Like a photo of one thing: the object is the largest thing in the picture and near the
    middle, but its size varies three-fold, it may sit off-centre, and half the backgrounds are
    as cluttered as a scene's (the rest nearly plain).

    Parameters
    ----------
    rng : numpy.random.Generator
    attributes : ndarray of shape (n, 3), int64
        ``(colour, pattern, shape)`` of each image's object.
    size : int
        Image side in pixels.

    Returns
    -------
    ndarray of shape (n, size, size, 3), uint8
    """
    attributes = np.asarray(attributes, dtype=np.int64).reshape(-1, 3)
    out = np.empty((attributes.shape[0], size, size, 3), dtype=np.uint8)
    scale = size / 48
    for start in range(0, attributes.shape[0], _CHUNK):
        attrs = attributes[start : start + _CHUNK]
        n = attrs.shape[0]
        radius = rng.uniform(7.5, 21.0, n) * scale
        # Up to 60% of the room between the object and the border, so it stays in the picture.
        room = np.maximum(size / 2 - radius, 0.0) * 0.6
        cx = size / 2 + rng.uniform(-1.0, 1.0, n) * room
        cy = size / 2 + rng.uniform(-1.0, 1.0, n) * room
        textured = rng.random(n) < 0.5
        canvas = plain_backgrounds(rng, n, size)
        canvas[textured] = textured_backgrounds(rng, int(textured.sum()), size)
        paint_layer(
            canvas,
            sample_layer(rng, attrs, _f32(cx), _f32(cy), _f32(radius)),
        )
        out[start : start + n] = to_uint8(canvas)
    return out


def layout_scenes(
    rng: np.random.Generator,
    n: int,
    n_fine: int,
    size: int = IMAGE_SIZE,
    min_objects: int = 2,
    max_objects: int = 4,
) -> tuple[I64, F32]:
    """Choose the objects of ``n`` scenes and where they go.

    Objects are placed one after another by rejection sampling, so that two centres are at least
    0.75 of the sum of their radii apart (a little overlap, never one object hiding another).

    Returns
    -------
    contents : ndarray of shape (n, max_objects), int64
        Fine concept index of each object, back to front; -1 pads scenes with fewer objects.
    placement : ndarray of shape (n, max_objects, 3), float32
        ``(cx, cy, radius)`` in pixels of each object (zeros where ``contents`` is -1).
    """
    scale = size / 48
    counts = rng.integers(min_objects, max_objects + 1, n)
    contents = np.full((n, max_objects), -1, dtype=np.int64)
    placement = np.zeros((n, max_objects, 3), dtype=np.float32)
    radii = rng.uniform(7.0, 12.5, (n, max_objects)) * scale
    candidates = rng.uniform(0.0, 1.0, (n, max_objects, 24, 2))
    concepts = rng.integers(0, n_fine, (n, max_objects))
    for i in range(n):
        placed: list[tuple[float, float, float]] = []
        for j in range(int(counts[i])):
            r = float(radii[i, j])
            best: tuple[float, float] | None = None
            best_gap = -np.inf
            for cu, cv in candidates[i, j]:
                x = r + cu * (size - 2 * r)
                y = r + cv * (size - 2 * r)
                gap = min(
                    (np.hypot(x - px, y - py) - 0.75 * (r + pr) for px, py, pr in placed),
                    default=np.inf,
                )
                if gap >= 0:
                    best = (x, y)
                    break
                if gap > best_gap:
                    best, best_gap = (x, y), gap
            if best is None:  # pragma: no cover - candidates is never empty
                raise AssertionError("no placement candidate")
            placed.append((best[0], best[1], r))
            contents[i, j] = concepts[i, j]
            placement[i, j] = (best[0], best[1], r)
    return contents, placement


def render_scenes(
    rng: np.random.Generator,
    n: int,
    fine_attributes: I64,
    size: int = IMAGE_SIZE,
    min_objects: int = 2,
    max_objects: int = 4,
) -> tuple[U8, I64]:
    """Cluttered scenes of several objects over textured backgrounds (the COCO analogue).

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of scenes.
    fine_attributes : ndarray of shape (n_fine, 3), int64
        ``ConceptSet.fine_attributes``; objects are drawn uniformly from these concepts.
    size, min_objects, max_objects : int

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), uint8
    contents : ndarray of shape (n, max_objects), int64
        Fine concept index of each object, back to front, -1 padded.
    """
    contents, placement = layout_scenes(rng, n, fine_attributes.shape[0], size, min_objects, max_objects)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(n, start + _CHUNK))
        canvas = textured_backgrounds(rng, rows.stop - rows.start, size)
        for j in range(max_objects):
            ids = contents[rows, j]
            present = ids >= 0
            layer = sample_layer(
                rng,
                fine_attributes[np.maximum(ids, 0)],
                placement[rows, j, 0],
                placement[rows, j, 1],
                np.maximum(placement[rows, j, 2], 1.0),
                present,
            )
            paint_layer(canvas, layer)
        images[rows] = to_uint8(canvas)
    return images, contents


def render_dead_leaves(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, n_discs: int = 96) -> U8:
    """Dead-leaves noise: discs of uniform random colours with radii ~ r^-3, painted in order.

    Each pixel takes the colour of the last disc that covers it (hard edges, as in the classic
    dead-leaves model), or the background colour where none does.

    Returns
    -------
    ndarray of shape (n, size, size, 3), uint8
    """
    xs, ys = _grid(size)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    r_min, r_max = 1.5 * size / 48, 22.0 * size / 48
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        # Colour 0 is the background; disc k paints colour k + 1.
        colours = rng.uniform(0.0, 1.0, (m, n_discs + 1, 3)).astype(np.float32)
        # Inverse CDF of p(r) ~ r^-3 on [r_min, r_max].
        u = rng.uniform(0.0, 1.0, (n_discs, m))
        radius2 = ((r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5) ** 2
        centres = rng.uniform(-0.1 * size, 1.1 * size, (n_discs, m, 2)).astype(np.float32)
        top = np.zeros((m, size, size), dtype=np.int64)
        for k in range(n_discs):
            dx2 = (xs[0][None, None, :] - centres[k, :, 0, None, None]) ** 2
            dy2 = (ys[:, 0][None, :, None] - centres[k, :, 1, None, None]) ** 2
            np.copyto(top, k + 1, where=(dx2 + dy2) < radius2[k, :, None, None])
        canvas = np.take_along_axis(colours, top.reshape(m, -1)[..., None], axis=1)
        out[start : start + m] = to_uint8(canvas.reshape(m, size, size, 3))
    return out


def render_shifted(rng: np.random.Generator, attributes: I64, size: int = IMAGE_SIZE) -> U8:
    """Shifted objects: smaller, off-centre, under a colour cast, low contrast, noisy.

    Parameters
    ----------
    rng : numpy.random.Generator
    attributes : ndarray of shape (n, 3), int64
        ``(colour, pattern, shape)`` of each image's object.

    Returns
    -------
    ndarray of shape (n, size, size, 3), uint8
    """
    attributes = np.asarray(attributes, dtype=np.int64).reshape(-1, 3)
    out = np.empty((attributes.shape[0], size, size, 3), dtype=np.uint8)
    scale = size / 48
    for start in range(0, attributes.shape[0], _CHUNK):
        attrs = attributes[start : start + _CHUNK]
        n = attrs.shape[0]
        radius = rng.uniform(8.0, 12.5, n) * scale
        cx = radius + rng.uniform(0.0, 1.0, n) * (size - 2 * radius)
        cy = radius + rng.uniform(0.0, 1.0, n) * (size - 2 * radius)
        canvas = textured_backgrounds(rng, n, size) * 0.6
        paint_layer(
            canvas,
            sample_layer(rng, attrs, cx.astype(np.float32), cy.astype(np.float32), radius.astype(np.float32)),
        )
        # Another palette: a random white-balance cast, compressed contrast, sensor noise.
        cast = rng.uniform(0.7, 1.3, (n, 1, 1, 3)).astype(np.float32)
        cast /= cast.mean(axis=3, keepdims=True)
        contrast = rng.uniform(0.55, 0.8, (n, 1, 1, 1)).astype(np.float32)
        canvas = (canvas - 0.5) * contrast + 0.5
        canvas = canvas * cast + rng.normal(0.0, 0.04, canvas.shape).astype(np.float32)
        out[start : start + n] = to_uint8(canvas)
    return out
