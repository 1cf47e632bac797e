"""Drawing ShapesWorld: textured background surfaces and textured object silhouettes.

Pure functions of a numpy ``Generator``: the same generator state gives the
same pixels. Everything is drawn with hard edges (no anti-aliasing) so the
masks are exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from carlib.world.classes import BACKGROUND_KINDS, OBJECT_CLASSES, RGB


def _jitter(color: RGB, rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    shifted = np.asarray(color, dtype=np.int64) + rng.integers(-amount, amount + 1, size=3)
    red, green, blue = (int(v) for v in np.clip(shifted, 0, 255))
    return red, green, blue


def draw_background(kind_id: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One background surface filling a square canvas.

    Arguments:
        kind_id: index into :data:`carlib.world.classes.BACKGROUND_KINDS`.
        size: canvas side in pixels.
        rng: source of randomness (texture placement, colour jitter).

    Returns:
        size x size x 3 uint8 RGB.
    """
    kind = BACKGROUND_KINDS[kind_id]
    base = np.asarray(_jitter(kind.color, rng, 10), dtype=np.float32)
    noise = rng.normal(0.0, 6.0, size=(size, size, 1)).astype(np.float32)
    canvas = np.clip(base + noise, 0, 255).astype(np.uint8)
    accent = _jitter(kind.accent, rng, 8)
    scale = size / 96.0
    if kind.name == "grass":  # short near-vertical blades
        for _ in range(int(70 * scale * scale)):
            x, y = rng.integers(0, size, size=2)
            length = int(rng.integers(3, 7) * scale) + 1
            lean = int(rng.integers(-2, 3))
            cv2.line(canvas, (int(x), int(y)), (int(x) + lean, int(y) - length), accent, 1)
    elif kind.name == "sky":  # soft white clouds made of a few discs
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.integers(0, size, size=2)
            for _ in range(4):
                dx, dy = rng.integers(-int(10 * scale), int(10 * scale) + 1, size=2)
                radius = int(rng.integers(4, 9) * scale) + 1
                cv2.ellipse(canvas, (int(cx + dx), int(cy + dy // 2)), (radius + 3, radius), 0, 0, 360, accent, -1)
    elif kind.name == "water":  # horizontal wave lines
        phase = rng.uniform(0, 2 * math.pi)
        for row in range(int(rng.integers(2, 6)), size, max(4, int(7 * scale))):
            xs = np.arange(0, size, 2)
            ys = row + 1.5 * np.sin(xs / (4.0 * scale) + phase + row)
            points = np.stack([xs, ys], axis=1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], False, accent, 1)
    elif kind.name == "sand":  # darker grains
        count = int(size * size * 0.08)
        grain_ys = rng.integers(0, size, size=count)
        grain_xs = rng.integers(0, size, size=count)
        canvas[grain_ys, grain_xs] = accent
    return canvas


def horizon_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A wavy horizontal split: True above the horizon.

    Arguments:
        size: canvas side in pixels.
        rng: randomness for the horizon height and wobble.

    Returns:
        size x size bool mask of the upper region (never empty, never full).
    """
    height = rng.uniform(0.3, 0.7) * size
    amplitude = rng.uniform(0.0, 0.06) * size
    phase = rng.uniform(0, 2 * math.pi)
    xs = np.arange(size)
    line = height + amplitude * np.sin(xs / size * 2 * math.pi * rng.uniform(0.5, 1.5) + phase)
    return np.arange(size)[:, None] < line[None, :]


def _rotate(points: np.ndarray, angle: float, center: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[c, s], [-s, c]])
    return rotated + np.asarray(center)


def _poly(canvas: np.ndarray, points: np.ndarray, color) -> None:
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], color)


def draw_object(
    class_index: int,
    center: tuple[float, float],
    radius: float,
    angle: float,
    size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One textured object on an empty canvas.

    Arguments:
        class_index: index into :data:`carlib.world.classes.OBJECT_CLASSES` (class id - 1).
        center: (x, y) centre in pixels.
        radius: nominal radius in pixels (the size attribute).
        angle: rotation in radians (shapes with an up direction tilt only slightly).
        size: canvas side in pixels.
        rng: randomness for colour jitter and texture.

    Returns:
        (size x size x 3 uint8 RGB appearance, size x size bool silhouette mask);
        the appearance is only meaningful inside the mask.
    """
    spec = OBJECT_CLASSES[class_index]
    color = _jitter(spec.color, rng, 12)
    accent = _jitter(spec.accent, rng, 10)
    mask = np.zeros((size, size), dtype=np.uint8)
    paint = np.zeros((size, size, 3), dtype=np.uint8)
    cx, cy = center
    r = float(radius)
    ic = (int(round(cx)), int(round(cy)))
    degrees = math.degrees(angle)

    def fill(draw) -> None:
        draw(mask, 1)
        draw(paint, color)

    if spec.shape == "circle":  # orange: disc with peel pores and a green stalk dot
        fill(lambda c, v: cv2.circle(c, ic, int(round(r)), v, -1))
        for _ in range(int(6 + r)):
            rho, phi = r * 0.85 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
            paint[int(cy + rho * math.sin(phi)) % size, int(cx + rho * math.cos(phi)) % size] = accent
        cv2.circle(paint, (ic[0], int(cy - 0.7 * r)), max(1, int(r * 0.15)), (60, 120, 20), -1)
    elif spec.shape == "lemon":  # ellipse with two pointed tips and a pale highlight
        axes = (int(round(r)), int(round(0.68 * r)))
        fill(lambda c, v: cv2.ellipse(c, ic, axes, degrees, 0, 360, v, -1))
        tips = np.array([[r * 1.25, 0], [r * 0.8, 0.3 * r], [r * 0.8, -0.3 * r]])
        fill(lambda c, v: _poly(c, _rotate(tips, angle, center), v))
        fill(lambda c, v: _poly(c, _rotate(tips * [-1, 1], angle, center), v))
        highlight = _rotate(np.array([[-0.25 * r, -0.3 * r]]), angle, center)[0]
        cv2.ellipse(
            paint,
            (int(highlight[0]), int(highlight[1])),
            (max(1, int(r * 0.35)), max(1, int(r * 0.15))),
            degrees,
            0,
            360,
            accent,
            -1,
        )
    elif spec.shape == "star":  # five-armed starfish with pale bumps
        phis = angle + np.arange(10) * math.pi / 5 - math.pi / 2
        rhos = np.where(np.arange(10) % 2 == 0, r * 1.1, r * 0.45)
        points = np.stack([cx + rhos * np.cos(phis), cy + rhos * np.sin(phis)], axis=1)
        fill(lambda c, v: _poly(c, points, v))
        for k in range(0, 10, 2):
            for t in (0.35, 0.65):
                px, py = cx + t * r * math.cos(phis[k]), cy + t * r * math.sin(phis[k])
                cv2.circle(paint, (int(px), int(py)), max(1, int(r * 0.08)), accent, -1)
    elif spec.shape == "diamond":  # kite: tall diamond with dark cross spars
        tilt = angle * 0.3
        points = np.array([[0, -1.2 * r], [0.75 * r, -0.25 * r], [0, 1.2 * r], [-0.75 * r, -0.25 * r]])
        fill(lambda c, v: _poly(c, _rotate(points, tilt, center), v))
        spars = _rotate(points, tilt, center).astype(np.int32)
        cv2.line(paint, tuple(spars[0]), tuple(spars[2]), accent, 1)
        cv2.line(paint, tuple(spars[1]), tuple(spars[3]), accent, 1)
    elif spec.shape == "triangle":  # tent: triangle with a dark door and stripes
        points = np.array([[0, -0.95 * r], [1.1 * r, 0.75 * r], [-1.1 * r, 0.75 * r]])
        fill(lambda c, v: _poly(c, points + np.asarray(center), v))
        for offset in (-0.55, 0.55):
            cv2.line(paint, (ic[0], int(cy - 0.95 * r)), (int(cx + offset * 2 * r), int(cy + 0.75 * r)), accent, 1)
        door = np.array([[0, 0.05 * r], [0.35 * r, 0.75 * r], [-0.35 * r, 0.75 * r]])
        _poly(paint, door + np.asarray(center), accent)
    elif spec.shape == "wheel":  # black tyre, grey rim, spokes and hub
        fill(lambda c, v: cv2.circle(c, ic, int(round(r)), v, -1))
        cv2.circle(paint, ic, max(1, int(round(0.72 * r))), (90, 90, 90), -1)
        for k in range(6):
            phi = angle + k * math.pi / 3
            end = (int(cx + 0.72 * r * math.cos(phi)), int(cy + 0.72 * r * math.sin(phi)))
            cv2.line(paint, ic, end, accent, 1)
        cv2.circle(paint, ic, max(1, int(round(0.2 * r))), accent, -1)
    elif spec.shape == "balloon":  # tall oval, knot at the bottom, shiny highlight
        axes = (int(round(0.8 * r)), int(round(r)))
        fill(lambda c, v: cv2.ellipse(c, ic, axes, degrees * 0.2, 0, 360, v, -1))
        knot = np.array([[0, 0.9 * r], [0.22 * r, 1.25 * r], [-0.22 * r, 1.25 * r]])
        fill(lambda c, v: _poly(c, knot + np.asarray(center), v))
        cv2.ellipse(
            paint,
            (int(cx - 0.35 * r), int(cy - 0.4 * r)),
            (max(1, int(0.15 * r)), max(1, int(0.3 * r))),
            20,
            0,
            360,
            accent,
            -1,
        )
    elif spec.shape == "square":  # dice: rotated white square with black pips
        half = 0.8 * r
        corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        fill(lambda c, v: _poly(c, _rotate(corners, angle, center), v))
        pips = {
            1: [(0, 0)],
            2: [(-1, -1), (1, 1)],
            3: [(-1, -1), (0, 0), (1, 1)],
            4: [(-1, -1), (1, -1), (-1, 1), (1, 1)],
            5: [(-1, -1), (1, -1), (0, 0), (-1, 1), (1, 1)],
            6: [(-1, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (1, 1)],
        }[int(rng.integers(1, 7))]
        spots = _rotate(np.asarray(pips, dtype=np.float64) * 0.5 * half, angle, center)
        for px, py in spots:
            cv2.circle(paint, (int(round(px)), int(round(py))), max(1, int(round(0.13 * r))), accent, -1)
    else:  # pragma: no cover - the class table only names the shapes above
        raise ValueError(f"unknown shape {spec.shape!r}")
    return paint, mask.astype(bool)


def remove_prompt_red(image: np.ndarray) -> np.ndarray:
    """Nudge any pure-red pixel (255, 0, 0) so scenes never contain the visual-prompt colour.

    Arguments:
        image: HxWx3 uint8 RGB, modified in place.

    Returns:
        the same array.
    """
    red = (image[..., 0] == 255) & (image[..., 1] == 0) & (image[..., 2] == 0)
    image[red] = (235, 20, 20)
    return image
