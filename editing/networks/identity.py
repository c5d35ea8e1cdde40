"""Identity network for the ID loss: ArcFace IR-SE50 (`model_ir_se50.pth`) with StyleCLIP's face crop.

Optionally facenet-pytorch's InceptionResnetV1 (`20180402-114759-vggface2.pt`) behind the same
interface. Both return L2-normalised embeddings; `IdentityNet.loss` is mean(1 - cos).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from editing.networks.checkpoints import CheckpointError, freeze, load_state_dict_file, load_strict
from editing.networks.irse import IR_SE50_BLOCKS, IR_SE50_WIDTHS, check_trunk, infer_trunk, make_body, make_input_layer


# StyleCLIP / pSp ID loss: pool to 256, crop the face region, pool to the network's input size.
POOL_SIZE = 256
FACE_CROP = (slice(35, 223), slice(32, 220))  # rows, columns of the 256 px image (188 x 188)
FACENET_INPUT_SIZE = 160


class Backbone(nn.Module):
    """ArcFace IR-SE trunk + embedding head; keys `input_layer.*`, `body.*`, `output_layer.*`.

    forward(x [B, 3, input_size, input_size] in [-1, 1]) -> [B, embedding_dim], L2-normalised.
    output_layer = BN2d, Dropout, Flatten, Linear(width * (input_size / 16)^2 -> embedding_dim), BN1d.
    Defaults reproduce `model_ir_se50.pth` (112 px input, IR-SE50, 512-d).
    """

    def __init__(
        self,
        input_size: int = 112,
        blocks: Sequence[int] = IR_SE50_BLOCKS,
        widths: Sequence[int] = IR_SE50_WIDTHS,
        embedding_dim: int = 512,
        drop_ratio: float = 0.6,
    ):
        super().__init__()
        check_trunk(blocks, widths)
        if input_size % 16:
            raise ValueError(f"identity input size must be a multiple of 16, not {input_size}")
        self.input_size = input_size
        self.blocks = tuple(blocks)
        self.widths = tuple(widths)
        self.embedding_dim = embedding_dim
        self.input_layer = make_input_layer(widths[0])
        self.body = make_body(blocks, widths)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[3]),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(widths[3] * side * side, embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {"input_size": self.input_size, "blocks": list(self.blocks), "widths": list(self.widths),
                "embedding_dim": self.embedding_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


class IdentityNet(nn.Module):
    """Face embedding with the reference preprocessing, for the identity loss and metrics.

    forward(img [B, 3, H, W] in [-1, 1], an aligned face) -> [B, D] L2-normalised: average-pool to
    256 px if H != 256, crop rows 35:223 and columns 32:220, average-pool to the network's input size
    (the image stays in [-1, 1]; facenet additionally gets its fixed standardisation).
    """

    def __init__(self, net: nn.Module, input_size: int, kind: str = "arcface"):
        super().__init__()
        if kind not in ("arcface", "facenet"):
            raise ValueError(f"identity network kind must be 'arcface' or 'facenet', not {kind!r}")
        self.net = net
        self.input_size = input_size
        self.kind = kind

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, 3, input_size, input_size] face crop."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"identity network expects images [B, 3, H, W], got {list(img.shape)}")
        if img.shape[-2:] != (POOL_SIZE, POOL_SIZE):
            img = F.adaptive_avg_pool2d(img, POOL_SIZE)
        img = F.adaptive_avg_pool2d(img[:, :, FACE_CROP[0], FACE_CROP[1]], self.input_size)
        if self.kind == "facenet":  # (255 * (x + 1) / 2 - 127.5) / 128
            img = img * (127.5 / 128.0)
        return img

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(img))

    def loss(self, img: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """mean over the batch of 1 - cos(f(img), f(ref)); ref [B, 3, H, W] gets no gradient. Scalar."""
        with torch.no_grad():
            ref_emb = self(ref)
        return (1 - (self(img) * ref_emb).sum(dim=1)).mean()


def _facenet(state: dict[str, torch.Tensor]) -> nn.Module:
    from facenet_pytorch import InceptionResnetV1

    net = InceptionResnetV1(pretrained=None, classify=False)
    if "logits.weight" in state:  # the classifier head ships in the file; embeddings do not use it
        net.logits = nn.Linear(*reversed(state["logits.weight"].shape))
    return net


def load_identity(path: str | Path, device: str | torch.device = "cpu") -> IdentityNet:
    """Load `model_ir_se50.pth` (or a smaller IR-SE trunk in its layout) or a facenet-pytorch state dict.

    Returns an IdentityNet in eval mode with frozen parameters.
    """
    path = Path(path).expanduser()
    state = load_state_dict_file(path, "identity network")
    if "input_layer.0.weight" in state:
        blocks, widths = infer_trunk(state, path)
        if "output_layer.3.weight" not in state:
            raise CheckpointError(f"{path} has an IR-SE trunk but no output_layer.3.weight (embedding layer)")
        embedding_dim, flat = state["output_layer.3.weight"].shape
        side = round((flat / widths[3]) ** 0.5)
        net: nn.Module = Backbone(16 * side, blocks, widths, int(embedding_dim))
        load_strict(net, state, path, "identity network (IR-SE)")
        identity = IdentityNet(net, 16 * side, "arcface")
    elif "conv2d_1a.conv.weight" in state:
        net = _facenet(state)
        load_strict(net, state, path, "identity network (facenet InceptionResnetV1)")
        identity = IdentityNet(net, FACENET_INPUT_SIZE, "facenet")
    else:
        raise CheckpointError(
            f"{path} is neither an ArcFace IR-SE state dict (input_layer.*) nor a facenet-pytorch "
            f"InceptionResnetV1 state dict (conv2d_1a.*)"
        )
    return freeze(identity, device)
