"""Vectorised procedural renderer for demo-world faces.

Every part of a face is a soft-edged shape from a signed-distance function evaluated on the pixel grid, so a
whole batch is drawn with a few hundred tensor operations (thousands of faces a minute on a CPU) and edges are
anti-aliased at any size. Coordinates: x and y in [-1, 1] across the image, y pointing down; one pixel is
`2 / size` units. Every look strength blends its shapes continuously, so fractional looks give in-between faces.
"""
from __future__ import annotations

import torch
from PIL import Image

from dialogue.ontology import VALUE_INDEX
from data_tools.faces.identity import N_IDENTITY, PARAM_INDEX
from data_tools.faces.look import HAIR_COLORS, N_VALUES, normalize_look

_HAIR_PALETTE = ((0.42, 0.25, 0.12), (0.93, 0.78, 0.42), (0.07, 0.06, 0.06), (0.63, 0.63, 0.65))  # brown blond black gray
_SKIN_STOPS = ((0.95, 0.79, 0.66), (0.87, 0.66, 0.50), (0.70, 0.50, 0.36), (0.46, 0.31, 0.21))
_IRIS_STOPS = ((0.33, 0.19, 0.09), (0.20, 0.40, 0.70), (0.22, 0.48, 0.28), (0.45, 0.50, 0.55))
_PALE = (0.98, 0.95, 0.94)
_LIPSTICK = (0.78, 0.05, 0.15)
_ROSY = (0.93, 0.33, 0.40)
_EYESHADOW = (0.45, 0.17, 0.55)
_GOLD = (0.98, 0.80, 0.15)
_DARK = (0.12, 0.08, 0.06)
_TEETH = (0.96, 0.95, 0.90)
_ZOOM = 0.85  # the face spans most of the frame, like an FFHQ crop


def _rgb(colour: tuple[float, float, float], device: torch.device) -> torch.Tensor:
    return torch.tensor(colour, device=device).view(1, 3, 1, 1)


def _stops(t: torch.Tensor, stops: tuple[tuple[float, float, float], ...]) -> torch.Tensor:
    """Piecewise-linear colour ramp: `t` `[B]` in [0, 1] → colours `[B, 3, 1, 1]`."""
    table = torch.tensor(stops, device=t.device)
    pos = t.clamp(0, 1) * (len(stops) - 1)
    low = pos.floor().long().clamp(max=len(stops) - 2)
    frac = (pos - low).unsqueeze(1)
    return (table[low] * (1 - frac) + table[low + 1] * frac).view(-1, 3, 1, 1)


def _hsv(h: torch.Tensor, s: float, v: torch.Tensor) -> torch.Tensor:
    """HSV → RGB for `h`, `v` `[B]` (s a constant) → `[B, 3, 1, 1]`."""
    k = (torch.tensor([5.0, 3.0, 1.0], device=h.device).view(1, 3) + h.view(-1, 1) * 6) % 6
    rgb = v.view(-1, 1) - v.view(-1, 1) * s * (torch.minimum(k, 4 - k).clamp(0, 1))
    return rgb.view(-1, 3, 1, 1)


def _fill(distance: torch.Tensor, pixel: float) -> torch.Tensor:
    """Coverage of a shape from its signed distance (negative inside), anti-aliased over one pixel."""
    return (0.5 - distance / pixel).clamp(0, 1)


def _ellipse(x, y, cx, cy, rx, ry):
    """Approximate signed distance to an ellipse (exact on the axes)."""
    return (torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) - 1) * torch.minimum(
        torch.as_tensor(rx), torch.as_tensor(ry))


def _segment(x, y, ax, ay, bx, by, radius):
    """Signed distance to a capsule: the segment (a, b) thickened by `radius`."""
    px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
    t = ((px * dx + py * dy) / (dx * dx + dy * dy + 1e-9)).clamp(0, 1)
    return torch.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - radius


def _band(y, low, high):
    """Signed distance (vertical only) to the band low < y < high."""
    return torch.maximum(low - y, y - high)


def _over(image: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Paint `colour` (`[B, 3, 1|H, 1|W]`) over `image` `[B, 3, H, W]` with coverage `alpha` `[B, 1, H, W]`
    (in place: one fused kernel per layer)."""
    return image.lerp_(colour.expand_as(image), alpha.expand_as(image))


def render_faces(identities: torch.Tensor, looks: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Draw faces: `identities` `[B, N_IDENTITY]` in [0, 1], `looks` `[B, 23]` strengths (made consistent with
    `normalize_look`) → images `[B, 3, size, size]` float32 in [-1, 1]. Deterministic; no randomness inside."""
    if identities.ndim != 2 or identities.shape[1] != N_IDENTITY:
        raise ValueError(f"identities must be [B, {N_IDENTITY}], got {list(identities.shape)}")
    if looks.shape != (identities.shape[0], N_VALUES):
        raise ValueError(f"looks must be [B, {N_VALUES}] matching identities, got {list(looks.shape)}")
    device = identities.device
    looks = normalize_look(looks.to(device).float())
    batch, pixel = identities.shape[0], 2.0 / size
    coords = ((torch.arange(size, device=device, dtype=torch.float32) + 0.5) * pixel - 1) * _ZOOM
    pixel = pixel * _ZOOM
    y, x = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    ax = x.abs()

    def p(name: str) -> torch.Tensor:
        return identities[:, PARAM_INDEX[name]].float().view(-1, 1, 1, 1)

    def s(value: str) -> torch.Tensor:
        return looks[:, VALUE_INDEX[value]].view(-1, 1, 1, 1)

    smile, angry, sad = s("smiling"), s("angry"), s("sad")
    wavy, receding, bangs = s("wavy hair"), s("receding hairline"), s("bangs")

    # colours
    hair = (looks[:, HAIR_COLORS] @ torch.tensor(_HAIR_PALETTE, device=device)).view(-1, 3, 1, 1)
    hair = hair * (0.88 + 0.24 * p("hair_shade")) + 0.03 * (p("hair_shade") - 0.5)
    beard = hair * 0.7 + _rgb(_DARK, device) * 0.3
    brow = hair * (0.55 - 0.25 * s("bushy eyebrows")) + _rgb(_DARK, device) * (0.45 + 0.25 * s("bushy eyebrows"))
    skin = _stops(p("skin_tone").flatten(), _SKIN_STOPS)
    skin = skin + (_rgb(_PALE, device) - skin) * 0.9 * s("pale skin")
    lips = skin * torch.tensor((0.82, 0.55, 0.55), device=device).view(1, 3, 1, 1) + 0.05
    lips = lips + (_rgb(_LIPSTICK, device) - lips) * s("lipstick")
    iris = _stops(p("iris_hue").flatten(), _IRIS_STOPS)
    background = _hsv(p("background_hue").flatten(), 0.25, 0.45 + 0.4 * p("background_lightness").flatten())
    shirt = _hsv(p("shirt_hue").flatten(), 0.5, torch.full((batch,), 0.55, device=device))

    # hair texture: streaks, straight or wavy
    phase = 8 * x + wavy * 0.45 * torch.sin(2 * torch.pi * 4 * y + 3 * x)
    streak = torch.sin(2 * torch.pi * phase)
    hair_tex = hair * (1 + 0.14 * streak) + 0.07 * streak

    # geometry
    cy = 0.1
    a = 0.42 + 0.08 * p("face_width")
    b = 0.55 + 0.08 * p("face_length")
    chin = cy + b
    volume = 0.04 + 0.09 * p("hair_volume")
    yf = (y - cy) / b
    jaw_k = 0.25 + 0.35 * p("jaw")
    face_d = (torch.sqrt((x / (a * (1 - jaw_k * yf.clamp(min=0) ** 2))) ** 2 + yf ** 2) - 1) * a
    head_cy = cy - 0.12
    cranium = torch.sqrt(x ** 2 + (y - head_cy) ** 2) - a * 1.07
    ripple = wavy * 0.035 * torch.sin(2 * torch.pi * 3 * y + 4 * ax)

    image = background + 0.06 * (y - 0.0) * background.new_ones(1)
    image = image.expand(batch, 3, size, size).clone()

    # hair behind the head
    hair_end = cy + 0.12 + 0.5 * p("hair_length")
    hang = torch.maximum(ax - (a + volume), _band(y, torch.full_like(hair_end, head_cy), hair_end))
    back = torch.minimum(cranium - volume, hang) + ripple
    image = _over(image, hair_tex, _fill(back, pixel))

    # shirt, neck, ears
    image = _over(image, shirt, _fill(_ellipse(x, y, 0.0, 1.28, 0.95, 0.5), pixel))
    neck = torch.maximum(ax - 0.19, _band(y, torch.full_like(chin, cy + 0.2), torch.full_like(chin, 0.86)))
    image = _over(image, skin * 0.82, _fill(neck, pixel) * (1 - _fill(_ellipse(x, y, 0.0, 1.28, 0.95, 0.5), pixel)))
    ear_y = cy - 0.02
    ears = torch.minimum(_ellipse(x, y, a * 0.97, ear_y, 0.065, 0.11), _ellipse(x, y, -a * 0.97, ear_y, 0.065, 0.11))
    image = _over(image, skin * 0.9, _fill(ears, pixel))

    # face with soft shading, rosy cheeks
    shade = 1 - 0.12 * ((x / a) ** 2 + yf.clamp(min=0) ** 2)
    image = _over(image, skin * shade, _fill(face_d, pixel))
    eye_y = cy - 0.12 + 0.05 * (p("eye_height") - 0.5)
    nose_y = cy + 0.1 + 0.05 * p("nose_length")
    cheeks = torch.exp(-(((ax - a * 0.56) ** 2 + (y - nose_y + 0.01) ** 2) / (2 * 0.075 ** 2)))
    image = _over(image, _rgb(_ROSY, device), 0.75 * s("rosy cheeks") * cheeks * _fill(face_d, pixel))

    # nose
    nose_w = 0.055 + 0.03 * p("nose_width")
    image = _over(image, skin * 0.78, 0.6 * _fill(_segment(x, y, 0.02, eye_y + 0.03, 0.03, nose_y - 0.03, 0.009), pixel))
    image = _over(image, skin * 0.86, _fill(_ellipse(x, y, 0.0, nose_y, nose_w, 0.028), pixel))
    nostrils = _ellipse(ax, y, nose_w * 0.55, nose_y + 0.008, 0.014, 0.010)
    image = _over(image, skin * 0.45, _fill(nostrils, pixel))

    # eyes: shadow (heavy makeup), white, iris, pupil, lid line / eyeliner
    eye_x = 0.15 + 0.05 * p("eye_spacing")
    eye_rx = 0.07 + 0.025 * p("eye_size")
    eye_ry = eye_rx * 0.55 * (1 - 0.35 * smile - 0.25 * angry + 0.05 * sad)
    heavy = s("heavy makeup")
    image = _over(image, _rgb(_EYESHADOW, device),
                  0.85 * heavy * _fill(_ellipse(ax, y, eye_x, eye_y - eye_ry * 0.7, eye_rx * 1.35, eye_ry + 0.045), pixel))
    eye_d = _ellipse(ax, y, eye_x, eye_y, eye_rx, eye_ry)
    image = _over(image, _rgb((0.97, 0.97, 0.97), device), _fill(eye_d, pixel))
    iris_d = torch.maximum(torch.sqrt((ax - eye_x) ** 2 + (y - eye_y) ** 2) - eye_rx * 0.5, eye_d)
    image = _over(image, iris, _fill(iris_d, pixel))
    image = _over(image, _rgb(_DARK, device), _fill(torch.sqrt((ax - eye_x) ** 2 + (y - eye_y) ** 2) - eye_rx * 0.2, pixel) * _fill(eye_d, pixel))
    lid = torch.maximum(eye_d.abs() - (0.008 + 0.022 * heavy), y - eye_y + 0.25 * eye_ry * (1 - heavy))
    image = _over(image, _rgb(_DARK, device), _fill(lid, pixel))

    # eyebrows: inner ends down when angry, up when sad
    brow_y = eye_y - 0.11 - 0.03 * p("brow_height")
    inner_dy = 0.075 * angry - 0.06 * sad - 0.025 * smile
    outer_dy = -0.03 * smile + 0.035 * sad - 0.01 * angry
    brow_r = 0.014 + 0.028 * s("bushy eyebrows")
    brows = _segment(ax, y, 0.07, brow_y + inner_dy, eye_x + eye_rx + 0.02 + 0.02 * s("bushy eyebrows"), brow_y + outer_dy, brow_r)
    image = _over(image, brow, _fill(brows, pixel))

    # mouth: a curve (corners up when smiling, down when sad), lips, teeth when open
    mouth_y = nose_y + 0.115
    big = s("big lips")
    mouth_w = (0.12 + 0.04 * p("mouth_width")) * (1 + 0.2 * smile + 0.08 * angry - 0.08 * sad + 0.1 * big)
    u = (x / mouth_w).clamp(-1, 1)
    taper = torch.sqrt((1 - u ** 2).clamp(min=0))
    curve = mouth_y - (0.075 * smile - 0.055 * sad - 0.02 * angry) * u ** 2
    inside_x = ax - mouth_w
    opening = (0.045 * smile + 0.022 * angry) * taper
    upper = (0.018 + 0.010 * p("lip_thickness")) * (1 + 1.6 * big) * taper
    lower = (0.024 + 0.012 * p("lip_thickness")) * (1 + 1.6 * big) * taper
    lip_region = torch.maximum(_band(y, curve - opening - upper, curve + opening + lower), inside_x)
    image = _over(image, lips, _fill(lip_region, pixel))
    open_region = torch.maximum(_band(y, curve - opening, curve + opening), inside_x)
    image = _over(image, _rgb(_TEETH, device), _fill(open_region, pixel) * (opening > 0.004).float())
    line = torch.maximum((y - curve).abs() - 0.007, inside_x + 0.005)
    image = _over(image, _rgb((0.35, 0.1, 0.1), device), 0.9 * _fill(line, pixel))

    # beard: mustache above the upper lip, goatee on the chin
    stache_top = nose_y + 0.03
    stache = torch.maximum(_band(y, stache_top + 0.01 * u ** 2, curve - opening - upper - 0.004), ax - mouth_w * 1.1)
    image = _over(image, beard, s("mustache") * _fill(torch.maximum(stache, stache_top - y), pixel))
    goatee_top = mouth_y + opening.amax(dim=(2, 3), keepdim=True) + 0.05 + 0.02 * big
    goatee = _ellipse(x, y, 0.0, (goatee_top + chin) / 2, 0.095, (chin - goatee_top) / 2 + 0.01)
    image = _over(image, beard, s("goatee") * _fill(torch.maximum(goatee, face_d + 0.004), pixel))

    # sideburns, hair on top (hairline recedes at the temples), bangs
    burns_bottom = cy + 0.27 - 0.6 * (a - ax).clamp(min=0)
    burns = torch.maximum(torch.maximum(_band(ax, a * 0.7, a * 1.02), _band(y, cy - 0.2, burns_bottom)), face_d)
    image = _over(image, hair_tex, s("sideburns") * _fill(burns, pixel))
    hairline = (cy - b * 0.72 - 0.14 * receding + 0.45 * (x / a) ** 4
                - 0.2 * receding * torch.exp(-((ax - a * 0.55) / 0.15) ** 2))
    cap = torch.maximum(cranium - volume * 0.6, y - hairline) + ripple * 0.5
    image = _over(image, hair_tex, _fill(cap, pixel))
    fringe_y = brow_y - 0.02 + 0.018 * torch.sin(2 * torch.pi * 9 * x) * (1 - wavy) + 0.03 * wavy * torch.sin(2 * torch.pi * 4 * x)
    fringe = torch.maximum(torch.maximum(cranium - volume * 0.6, y - fringe_y), ax - a * 0.85)
    image = _over(image, hair_tex, bangs * _fill(fringe, pixel))

    # earrings: a stud and a drop under each lobe
    lobe_y = ear_y + 0.1
    rings = torch.minimum(torch.sqrt((ax - a * 0.99) ** 2 + (y - lobe_y) ** 2) - 0.032,
                          torch.sqrt((ax - a * 0.99) ** 2 + (y - lobe_y - 0.075) ** 2) - 0.028)
    image = _over(image, _rgb(_GOLD, device), s("earrings") * _fill(rings, pixel))
    return (image.clamp(0, 1) * 2 - 1).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """One image `[3, H, W]` in [-1, 1] → an RGB PIL image."""
    array = ((image.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def render_pil(identity: torch.Tensor, look: torch.Tensor, size: int = 64) -> Image.Image:
    """One face as a PIL image: `identity` `[N_IDENTITY]`, `look` `[23]`."""
    return to_pil(render_faces(identity.view(1, -1), look.view(1, -1), size)[0])
