"""The demo CLIP's network: its open_clip config and a builder, shared by CLIP training, the generator's
perceptual term and shipping (kept apart so that those modules do not import each other)."""
from __future__ import annotations

CLIP_CONFIG = {
    "embed_dim": 96,
    "init_logit_scale": 2.302585,  # ln 10
    "init_logit_bias": -5.0,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 32},
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_clip():
    """(open_clip CLIP, ClipScorer wrapping it) for CLIP_CONFIG, in training mode."""
    import open_clip
    from open_clip.model import CLIP

    from editing.networks.clip_model import ClipScorer

    model = CLIP(**CLIP_CONFIG)
    tokenizer = open_clip.SimpleTokenizer(context_length=CLIP_CONFIG["text_cfg"]["context_length"])
    return model, ClipScorer(model, tokenizer, CLIP_CONFIG["vision_cfg"]["image_size"], CLIP_CONFIG["embed_dim"])
