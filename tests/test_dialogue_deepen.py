"""dialogue.deepen: a deeper T5 that computes exactly what the original did, and whose copies can learn."""
from __future__ import annotations

import pytest
import torch

from dialogue.deepen import deepen

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_t5(gated: bool = False):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                      dropout_rate=0.0, feed_forward_proj="gated-gelu" if gated else "relu",
                      decoder_start_token_id=0)
    return T5ForConditionalGeneration(config).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, decoder_input_ids=ids[:, :4]).logits


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_deeper_model_gives_the_same_logits(factor, gated):
    model = _random_t5(gated)
    grown = deepen(model, factor)
    assert grown.config.num_layers == 2 * factor and grown.config.num_decoder_layers == 2 * factor
    assert len(grown.encoder.block) == 2 * factor and len(grown.decoder.block) == 2 * factor
    ids = torch.randint(2, 50, (3, 9), generator=torch.Generator().manual_seed(1))
    assert torch.equal(_logits(model, ids), _logits(grown, ids))


def test_copies_start_as_identity_and_originals_keep_their_weights():
    model = _random_t5()
    grown = deepen(model, 2)
    assert torch.equal(grown.encoder.block[2].layer[0].SelfAttention.q.weight,
                       model.encoder.block[1].layer[0].SelfAttention.q.weight)
    assert torch.equal(grown.decoder.block[2].layer[1].EncDecAttention.o.weight,
                       model.decoder.block[1].layer[1].EncDecAttention.o.weight)
    copy = grown.decoder.block[3]
    assert not copy.layer[0].SelfAttention.o.weight.any()
    assert not copy.layer[1].EncDecAttention.o.weight.any()
    assert not copy.layer[2].DenseReluDense.wo.weight.any()
    assert copy.layer[0].SelfAttention.q.weight.any()  # only the outputs are zero: the copy can learn
    assert not copy.layer[0].SelfAttention.has_relative_attention_bias


def test_copies_get_gradients_after_one_step():
    model = deepen(_random_t5(), 2).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.randint(2, 50, (4, 7), generator=torch.Generator().manual_seed(2))
    for _ in range(2):
        opt.zero_grad()
        model(input_ids=ids, labels=ids[:, :5].contiguous()).loss.backward()
        opt.step()
    copy = model.encoder.block[1].layer
    assert copy[0].SelfAttention.o.weight.any() and copy[1].DenseReluDense.wo.weight.any()
    assert copy[0].SelfAttention.q.weight.grad.abs().sum() > 0


def test_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="deepen factor must be 1 or more"):
        deepen(_random_t5(), 0)
