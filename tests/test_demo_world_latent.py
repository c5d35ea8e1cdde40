"""The demo world as a function of a Gaussian vector, the renderer's value regions, and the generator's
warm start: random z give the world's distribution of faces, faces with known parameters have a code that
gives them back, regions sit where the value is drawn, and widening a generator keeps its pictures."""
from __future__ import annotations

import torch

from data_tools.faces import render_faces, sample_identities
from data_tools.faces.latent import DRAWN, N_LATENT_USED, latent_from_params, params_from_latent
from data_tools.faces.look import ADDITIVE, EXPRESSIONS, HAIR_COLORS, WAVY, sample_looks
from data_tools.faces.regions import value_regions
from dialogue.ontology import VALUE_INDEX


def test_random_codes_follow_the_worlds_sampling():
    z = torch.randn(20000, 128, generator=torch.Generator().manual_seed(0))
    identities, looks = params_from_latent(z)
    drawn = identities[:, list(DRAWN)]
    assert drawn.min() >= 0 and drawn.max() <= 1
    assert torch.allclose(drawn.mean(0), torch.full((len(DRAWN),), 0.5), atol=0.02)
    assert torch.allclose(drawn.std(0), torch.full((len(DRAWN),), 12 ** -0.5), atol=0.02)
    winners = looks[:, EXPRESSIONS].argmax(1)
    assert torch.allclose(torch.bincount(winners, minlength=4) / len(z), torch.full((4,), 0.25), atol=0.02)
    assert torch.allclose(torch.bincount(looks[:, HAIR_COLORS].argmax(1), minlength=4) / len(z),
                          torch.full((4,), 0.25), atol=0.02)
    assert abs(float((looks[:, WAVY] > 0.5).float().mean()) - 0.5) < 0.02
    present = (looks[:, ADDITIVE] > 0.5).float().mean(0)
    assert torch.allclose(present, torch.full((len(ADDITIVE),), 0.4), atol=0.02)
    # most looks are clear-cut: the softened thresholds leave in-between strengths to a minority per value
    in_between = ((looks > 0.05) & (looks < 0.95)).float().mean(0)
    assert float(in_between.max()) < 0.2


def test_only_the_direction_and_the_used_components_of_z_matter():
    z = torch.randn(8, 128, generator=torch.Generator().manual_seed(1))
    a = params_from_latent(z)
    b = params_from_latent(3 * z)
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)
    other = torch.randn(8, 128 - N_LATENT_USED, generator=torch.Generator().manual_seed(9))
    rest = z[:, N_LATENT_USED:]
    z2 = torch.cat([z[:, :N_LATENT_USED], other * rest.norm(dim=1, keepdim=True) / other.norm(dim=1, keepdim=True)], 1)
    moved = params_from_latent(z2)  # other ignored components, same norm: the same face
    assert torch.allclose(moved[0], a[0], atol=1e-5) and torch.allclose(moved[1], a[1], atol=1e-5)


def test_known_faces_have_a_code_that_gives_them_back():
    gen = torch.Generator().manual_seed(2)
    identities, looks = sample_identities(64, generator=gen), sample_looks(64, gen)
    z = latent_from_params(identities, looks)
    assert z.shape == (64, 128)
    assert torch.allclose(z.pow(2).mean(1), torch.ones(64), atol=1e-4)  # PixelNorm leaves it as it is
    back_ids, back_looks = params_from_latent(z)
    assert torch.allclose(back_ids[:, list(DRAWN)], identities[:, list(DRAWN)], atol=1e-4)
    assert (back_looks - looks).abs().max() < 0.01
    assert (render_faces(back_ids, back_looks) - render_faces(identities, looks)).abs().mean() < 0.01
    soft = looks.clone()
    soft[:, ADDITIVE] = 0.3
    assert (params_from_latent(latent_from_params(identities, soft))[1][:, ADDITIVE] - 0.3).abs().max() < 1e-4


def test_value_regions_sit_where_the_value_is_drawn():
    identities = sample_identities(6, seed=3)
    looks = sample_looks(6, torch.Generator().manual_seed(3))
    regions = value_regions(identities, looks)
    assert regions.shape == (6, 23, 64, 64)
    rows = torch.arange(64).float()

    def centre_row(value: str) -> torch.Tensor:
        mask = regions[:, VALUE_INDEX[value]].sum(2)  # [6, 64] per row
        return (mask * rows).sum(1) / mask.sum(1)

    assert (centre_row("mustache") > 38).all() and (centre_row("bushy eyebrows") < 32).all()
    assert (centre_row("goatee") > centre_row("mustache")).all()
    mustache_area = regions[:, VALUE_INDEX["mustache"]].mean()
    assert 0.005 < mustache_area < regions[:, VALUE_INDEX["brown hair"]].mean()
    earrings = regions[:, VALUE_INDEX["earrings"]]
    assert earrings[:, :, 24:40].sum() == 0  # the middle columns: nowhere near the ears
    assert torch.equal(regions[:, VALUE_INDEX["smiling"]], regions[:, VALUE_INDEX["sad"]])  # one group region
    # outside its region, switching a value changes nothing
    on = looks.clone()
    on[:, VALUE_INDEX["lipstick"]] = 1 - (looks[:, VALUE_INDEX["lipstick"]] > 0.5).float()
    change = (render_faces(identities, on) - render_faces(identities, looks)).abs().amax(1)
    assert change[regions[:, VALUE_INDEX["lipstick"]] == 0].max() <= 0.04


def test_region_weights_favour_the_mouth_and_widening_keeps_the_pictures():
    from editing.demo_world.generator_train import build_generator, region_weights, widen_generator
    from editing.networks.generator import Generator

    identities = sample_identities(4, seed=5)
    looks = sample_looks(4, torch.Generator().manual_seed(5))
    weights = region_weights(identities, looks)
    assert weights.shape == (4, 1, 64, 64) and weights.min() >= 1
    assert weights[:, :, 44:52, 26:38].mean() > 2 * weights[:, :, 0:8, :].mean()

    torch.manual_seed(0)
    narrow = Generator(64, 128, 4, channels={4: 128, 8: 128, 16: 64, 32: 32, 64: 16})
    wide = build_generator()
    widen_generator(narrow, wide)
    w = torch.randn(2, narrow.n_latent, 128)
    assert torch.allclose(narrow.synthesis(w), wide.synthesis(w), atol=1e-4)
