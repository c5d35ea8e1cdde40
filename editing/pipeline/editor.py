"""The `Editor` facade: photo → inversion once, then one edit per turn (DESIGN.md, "How the packages meet").

    editor = Editor.from_weights("ffhq", device="cuda")
    inversion = editor.invert("photo.jpg")             # align, e4e → w_s; cache inversion.to_bytes()
    result = editor.edit(inversion, state)              # multi-turn: from w_s towards the whole state
    result.image.save("edited.png"); result.metrics["min_rel"]

Modes (paper §5.1, Table 4):
- `multi` (the method): start from w_s, optimise towards `prompts.description(state)` (with the
  per-attribute objective: towards each of `prompts.attribute_texts(state)`), L2/ID anchored at w_s.
  An empty state returns the reconstruction without optimising.
- `single` (the baseline): start from the previous turn's result (`previous.w`, or w_s on the first
  turn), optimise towards `prompts.change_description(state, previous.state)` (what this turn added,
  and what removed values become; per-attribute: `prompts.change_texts`), L2/ID anchored at that
  previous code. A turn whose change has nothing to aim for returns the previous image unchanged.

Thread safety: one Editor runs one call at a time; concurrent `invert`/`edit` calls on the same
Editor wait for each other (an internal lock). Use one Editor per worker thread for parallelism.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dialogue.device import resolve_device
from dialogue.ontology import BeliefState
from editing.pipeline.critic import Critic
from editing.pipeline.image_tensors import pil_to_tensor, tensor_to_pil
from editing.pipeline.optimizer import OptimizerSettings, ProgressFn, optimize_latent
from editing.pipeline.prompts import attribute_texts, change_description, change_texts, description
from editing.pipeline.refine import RefineSettings, refine

log = logging.getLogger(__name__)

MODES = ("multi", "single")
INVERSION_FORMAT = "i2edit-inversion"
DEFAULT_PREVIEW_EVERY = 50


def _png_tensor(image: Image.Image) -> torch.Tensor:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def _png_image(data: torch.Tensor) -> Image.Image:
    return Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")


@dataclass
class Inversion:
    """A photo inverted into W+.

    `aligned`: the face crop the editor works on (generator size, RGB); `w_s` [1, n_latent, style_dim]
    float32 on the CPU (e4e's code, latent_avg included); `reconstruction`: G(w_s) as a PIL image.
    Serialise with `to_bytes()` / `from_bytes()` (a torch file of tensors only, safe to load) or
    `save(path)` / `load(path)`.
    """

    aligned: Image.Image
    w_s: torch.Tensor
    reconstruction: Image.Image

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({
            "format": INVERSION_FORMAT, "version": 1, "w_s": self.w_s.detach().cpu().float(),
            "aligned_png": _png_tensor(self.aligned), "reconstruction_png": _png_tensor(self.reconstruction),
        }, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Inversion":
        try:
            stored = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"not a stored inversion ({exc})") from exc
        if not isinstance(stored, dict) or stored.get("format") != INVERSION_FORMAT:
            raise ValueError("not a stored inversion (no 'format': 'i2edit-inversion' entry)")
        w_s = stored["w_s"]
        if w_s.ndim != 3 or w_s.shape[0] != 1:
            raise ValueError(f"stored inversion has a w_s of shape {list(w_s.shape)}, expected [1, n_latent, dim]")
        return cls(aligned=_png_image(stored["aligned_png"]), w_s=w_s,
                   reconstruction=_png_image(stored["reconstruction_png"]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Inversion":
        path = Path(path)
        try:
            return cls.from_bytes(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


@dataclass
class EditResult:
    """One edit.

    `image` (PIL) and `tensor` [1, 3, size, size] in about [-1, 1] on the CPU; `w` [1, n_latent, style_dim]
    on the CPU; `state` the belief state it was made for; `mode`; `text` the description the edit aimed
    for (the optimiser's text, or with the per-attribute objective its texts in one sentence; None when
    nothing was optimised); `metrics`: `avg_rel`, `min_rel` (None for an empty state), `per_attribute`
    {value: cosine}, `identity` (ArcFace cosine to the aligned photo), `lpips` (None when skipped; the
    reason is in `skipped`); with a calibrated critic also `verdicts` {value: present?} of the kept image and
    `critique` (each round's scores and verdicts, `editing.pipeline.refine.Refined.to_json`); `steps` run (refinement
    included), `seconds` (whole call), `device`, `losses` of the last step.
    """

    image: Image.Image
    tensor: torch.Tensor
    w: torch.Tensor
    state: BeliefState
    mode: str
    text: str | None
    metrics: dict[str, Any]
    steps: int
    seconds: float
    device: str
    losses: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EditPlan:
    """Where an edit starts (`start`), what L2/ID keep it near (`anchor`), its text (None: no
    optimisation; the result is the render of `start`) and the same aims one text each
    (`attribute_texts`, for the per-attribute objective; empty when `text` is None)."""

    start: torch.Tensor
    anchor: torch.Tensor
    text: str | None
    attribute_texts: tuple[str, ...] = ()

    def clip_texts(self, objective: str) -> tuple[str, ...]:
        """The CLIP term's texts under `OptimizerSettings.text_objective`."""
        return (self.text,) if objective == "description" else self.attribute_texts


def plan_edit(inversion: Inversion, state: BeliefState, mode: str = "multi",
              previous: EditResult | None = None) -> EditPlan:
    """The starting code, anchor code and text of an edit in `mode` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "multi":
        if not state:
            return EditPlan(inversion.w_s, inversion.w_s, None)
        return EditPlan(inversion.w_s, inversion.w_s, description(state), tuple(attribute_texts(state).values()))
    before = BeliefState() if previous is None else previous.state
    start = inversion.w_s if previous is None else previous.w
    return EditPlan(start, start, change_description(state, before), change_texts(state, before))


class Editor:
    """Generator, e4e, CLIP, identity network (and LPIPS when its weights exist) on one device.

    Build with `Editor.from_weights`. `settings` are the optimiser's (paper defaults, previews every 50
    steps when a progress callback is given). `align_faces`: whether `invert` aligns by default.
    `critic`: per-value thresholds (from the weight set's manifest); with a calibrated one every edit is
    critiqued and refined by `refine_settings` (`editing.pipeline.refine`); without, edits run as they are and
    `metrics["skipped"]["critic"]` says why there are no verdicts.
    """

    def __init__(self, generator, e4e, clip, identity=None, lpips=None, device: str | torch.device = "cpu",
                 settings: OptimizerSettings | None = None, align_faces: bool = True,
                 skipped: dict[str, str] | None = None, critic: Critic | None = None,
                 refine_settings: RefineSettings | None = None):
        self.device = resolve_device(device)
        self.generator = generator
        self.e4e = e4e
        self.clip = clip
        self.identity = identity
        self.lpips = lpips
        self.settings = settings or OptimizerSettings(preview_every=DEFAULT_PREVIEW_EVERY)
        self.align_faces = align_faces
        self.skipped = dict(skipped or {})
        if identity is None:
            self.skipped.setdefault("identity", "no identity network loaded")
        if lpips is None:
            self.skipped.setdefault("lpips", "no LPIPS network loaded")
        self.critic = critic or Critic()
        self.refine_settings = refine_settings or RefineSettings()
        if not self.critic.calibrated:
            self.skipped.setdefault("critic", "this weight set has no calibrated critic thresholds "
                                              "(i2edit calibrate); edits are not checked value by value")
            log.warning("no calibrated critic thresholds: edits run without per-value verdicts or refinement")
        if e4e.decoder.n_latent != generator.n_latent or e4e.decoder.style_dim != generator.style_dim:
            raise ValueError(
                f"e4e gives [{e4e.decoder.n_latent}, {e4e.decoder.style_dim}] codes but the generator takes "
                f"[{generator.n_latent}, {generator.style_dim}]")
        self._lock = threading.Lock()

    @classmethod
    def from_weights(cls, weights: Any = "ffhq", device: str | torch.device = "cpu",
                     weights_dir: str | Path | None = None, settings: OptimizerSettings | None = None,
                     align_faces: bool = True) -> "Editor":
        """Load every network of a weight set (`ffhq`, `demo`, a directory, a manifest, or a
        `editing.weights.weight_set.WeightSet`). A set without a separate generator uses e4e's decoder.
        LPIPS is loaded when the set has its AlexNet file; otherwise it is reported as skipped."""
        from editing.pipeline.calibrate import read_critic
        from editing.pipeline.metrics import load_lpips
        from editing.weights.weight_set import EDIT_ROLES, resolve_set

        weight_set = weights if hasattr(weights, "load") else resolve_set(weights, weights_dir)
        missing = weight_set.missing(EDIT_ROLES)
        if missing:
            reasons = []
            for role in missing:
                try:
                    weight_set.path(role)
                except FileNotFoundError as exc:
                    reasons.append(str(exc))
            raise FileNotFoundError(f"cannot edit without {', '.join(missing)}: {'; '.join(reasons)}")
        device = resolve_device(device)
        e4e = weight_set.load("e4e", str(device))
        generator = weight_set.load("generator", str(device)) if weight_set.has("generator") else e4e.decoder
        clip = weight_set.load("clip", str(device))
        identity = weight_set.load("identity", str(device))
        skipped = {}
        try:
            lpips = load_lpips(weight_set.path("lpips-backbone"), device)
        except FileNotFoundError as exc:
            lpips = None
            skipped["lpips"] = str(exc)
        log.info("editor ready: %s weights (%s), %d px generator, on %s", weight_set.name, weight_set.root,
                 generator.size, device)
        critic = Critic.from_manifest(read_critic(weight_set))
        return cls(generator, e4e, clip, identity, lpips, device, settings, align_faces, skipped, critic)

    # --- inversion -------------------------------------------------------------------------------

    def prepare(self, photo: "Image.Image | str | Path", align: bool | None = None) -> dict[int, Image.Image]:
        """{size: square crop} at the generator's and the encoder's input size.

        With alignment: the FFHQ crop of the largest face (`editing.pipeline.align`; `NoFaceError` when none).
        Without: the photo (EXIF-rotated), centre-cropped to a square and resized.
        """
        from editing.pipeline.align import align_face, load_photo

        sizes = tuple(sorted({self.generator.size, self.e4e.input_size}, reverse=True))
        if self.align_faces if align is None else align:
            return align_face(photo, sizes, device=str(self.device)).images
        image = load_photo(photo)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return {size: square.resize((size, size), Image.LANCZOS) for size in sizes}

    def invert(self, photo: "Image.Image | str | Path", align: bool | None = None) -> Inversion:
        """Align `photo` (path or PIL image), encode it with e4e and render the reconstruction."""
        crops = self.prepare(photo, align)
        with self._lock, torch.no_grad():
            encoder_input = pil_to_tensor(crops[self.e4e.input_size]).to(self.device)
            w_s = self.e4e.encode(encoder_input)
            reconstruction = self.generator.synthesis(w_s, randomize_noise=False)
        return Inversion(aligned=crops[self.generator.size], w_s=w_s.detach().cpu().float(),
                         reconstruction=tensor_to_pil(reconstruction))

    # --- editing ---------------------------------------------------------------------------------

    def edit(self, inversion: Inversion, state: BeliefState, mode: str = "multi",
             previous: EditResult | None = None, steps: int | None = None, progress: ProgressFn | None = None,
             cancel: threading.Event | None = None, refine_settings: RefineSettings | None = None,
             effort: int = 0) -> EditResult:
        """Edit the inverted photo towards `state` (see the module docstring for the modes).

        `steps` overrides the optimiser's step count; `progress(step, total, losses, preview_or_None)` is
        called after every step (previews are PIL images; `total` includes the refinement budget, and
        refinement steps carry `losses["round"]`); setting `cancel` raises `editing.pipeline.optimizer.Cancelled`.
        `refine_settings` overrides the editor's (`rounds=0` turns refinement off while keeping the verdicts).
        `effort` (0, 1, 2, …: "try harder") multiplies the steps by 1 + effort and adds `effort` refinement
        rounds.
        """
        if effort < 0:
            raise ValueError(f"effort must be 0 or more, got {effort}")
        plan = plan_edit(inversion, state, mode, previous)
        settings = self.settings if steps is None else dataclasses.replace(self.settings, steps=steps)
        refining = refine_settings or self.refine_settings
        if effort:
            settings = dataclasses.replace(settings, steps=settings.steps * (1 + effort))
            refining = dataclasses.replace(refining, rounds=refining.rounds + effort)
        critique = self.critic.calibrated and plan.text is not None
        total = settings.steps + (refining.max_extra_steps(settings.steps) if critique else 0)
        with self._lock:
            started = time.perf_counter()
            start = plan.start.to(self.device)
            anchor = plan.anchor.to(self.device)
            if plan.text is None:
                with torch.no_grad():
                    image = self.generator.synthesis(start, randomize_noise=False)
                w, steps_run, losses = start, 0, {}
            else:
                texts = plan.clip_texts(settings.text_objective)
                forward = None if progress is None else (
                    lambda step, _total, step_losses, preview: progress(step, total, step_losses, preview))
                result = optimize_latent(self.generator, self.clip, texts, start, anchor, self.identity, settings,
                                         forward, cancel)
                image, w, steps_run, losses = result.image, result.w, result.steps, result.losses
            critique_json = None
            if critique:
                refined = refine(self.generator, self.clip, self.identity, self.critic, texts, w, image, anchor,
                                 lambda candidate: self.scores(candidate, state), settings, refining, progress,
                                 cancel, step_offset=steps_run, total_steps=total)
                image, w, steps_run = refined.image, refined.w, steps_run + refined.steps
                critique_json = refined.to_json()
            metrics = self.measure(image, state, inversion)
            if critique_json is not None:
                metrics["verdicts"] = self.critic.verdicts(metrics["per_attribute"])
                metrics["critique"] = critique_json
            seconds = time.perf_counter() - started
        return EditResult(image=tensor_to_pil(image), tensor=image.detach().cpu(), w=w.detach().cpu(), state=state,
                          mode=mode, text=plan.text, metrics=metrics, steps=steps_run, seconds=seconds,
                          device=str(self.device), losses=losses)

    @torch.no_grad()
    def scores(self, image: torch.Tensor, state: BeliefState) -> dict[str, float]:
        """{value: CLIP cosine} of `image` [1, 3, H, W] for each value of `state` (the critic's input)."""
        from editing.pipeline.metrics import relevance

        rel = relevance(self.clip, image.to(self.device), state)
        return rel.per_attribute if rel else {}

    @torch.no_grad()
    def measure(self, image: torch.Tensor, state: BeliefState, inversion: Inversion) -> dict[str, Any]:
        """Metrics of an edited image [1, 3, size, size] against the state and the aligned photo."""
        from editing.pipeline.metrics import identity_similarity, relevance

        image = image.to(self.device)
        original = pil_to_tensor(inversion.aligned, self.generator.size).to(self.device)
        rel = relevance(self.clip, image, state)
        metrics: dict[str, Any] = {
            "avg_rel": rel.avg_rel if rel else None,
            "min_rel": rel.min_rel if rel else None,
            "per_attribute": rel.per_attribute if rel else {},
            "identity": identity_similarity(self.identity, image, original) if self.identity is not None else None,
            "lpips": float(self.lpips(image, original)[0]) if self.lpips is not None else None,
        }
        if self.skipped:
            metrics["skipped"] = dict(self.skipped)
        return metrics


def describe_metrics(metrics: dict[str, Any]) -> str:
    """One line for people: `AvgRel 0.771  MinRel 0.752  identity 0.81  LPIPS 0.44`."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"

    return "  ".join(f"{label} {fmt(metrics.get(key))}" for label, key in
                     (("AvgRel", "avg_rel"), ("MinRel", "min_rel"), ("identity", "identity"), ("LPIPS", "lpips")))
