"""VSD on a tiny randomly initialised diffusers UNet: LoRA starts at the prior, learns alone."""

from __future__ import annotations

import pytest
import torch

from sdlib.distill.common import add_noise
from sdlib.distill.vsd import VSD, VSDConfig, to_epsilon, vsd_gradient


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        attention_head_dim=8, norm_num_groups=8,
    ).eval()


def _schedule() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    return torch.cumprod(1.0 - betas, 0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_lora_model_starts_at_the_prior_and_trains_only_its_own_weights(prediction_type) -> None:
    unet = _tiny_unet()
    abar = _schedule()
    vsd = VSD(unet, abar, prediction_type, VSDConfig(lora_rank=4, lr=1e-3))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    eps = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([100, 800])
    x_t = add_noise(x, eps, abar, t)
    text = torch.randn(2, 5, 16, generator=g)
    c2w = torch.eye(4).expand(2, 4, 4).clone()
    with torch.no_grad():
        base = to_epsilon(unet(x_t, t, encoder_hidden_states=text).sample, x_t, abar, t,
                          prediction_type)
    lora = vsd.predict_noise(x_t, t, text, c2w)
    torch.testing.assert_close(lora, base, rtol=1e-5, atol=1e-5)
    assert vsd_gradient(base, lora, torch.ones(2)).abs().max() < 1e-4

    before = {k: v.clone() for k, v in unet.state_dict().items()}
    trainable = {n for n, p in vsd.unet.named_parameters() if p.requires_grad}
    assert trainable and all("lora" in n or "class_embedding" in n for n in trainable)
    for _ in range(3):
        loss = vsd.train_step(x, text, c2w, generator=g)
    assert loss == loss  # finite
    for k, v in unet.state_dict().items():  # the prior is untouched
        assert torch.equal(v, before[k]), k
    assert not torch.allclose(vsd.predict_noise(x_t, t, text, c2w), base)


def test_to_epsilon_v_prediction_matches_schedule_math() -> None:
    abar = _schedule()
    t = torch.tensor([10, 500, 990])
    x = torch.randn(3, 4, 2, 2)
    eps = torch.randn(3, 4, 2, 2)
    a = abar[t].sqrt().reshape(-1, 1, 1, 1)
    s = (1 - abar[t]).sqrt().reshape(-1, 1, 1, 1)
    x_t = a * x + s * eps
    v = a * eps - s * x
    torch.testing.assert_close(to_epsilon(v, x_t, abar, t, "v_prediction"), eps,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="accepted"):
        to_epsilon(v, x_t, abar, t, "sample")


def test_loss_scale_gives_the_same_step() -> None:
    """VSDConfig.loss_scale: the backward of S·L, gradients divided by S: the same gradients
    and the same update as S = 1 (float32, S a power of two); bad scales are refused."""
    unet = _tiny_unet()
    abar = _schedule()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    text = torch.randn(2, 5, 16, generator=g)
    c2w = torch.eye(4).expand(2, 4, 4).clone()
    runs = []
    for scale in (1.0, 1024.0):
        torch.manual_seed(1)
        vsd = VSD(unet, abar, "epsilon", VSDConfig(lora_rank=4, lr=1e-3, loss_scale=scale,
                                                    camera_dropout=0.0))
        with torch.no_grad():  # B ≠ 0, as after some training: every LoRA tensor has a gradient
            for p in vsd.parameters:
                p.add_(1e-2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        with torch.enable_grad():
            vsd.backward(vsd.lora_loss(x, text, c2w, torch.Generator().manual_seed(3)))
        grads = [p.grad.clone() for p in vsd.parameters]
        vsd.train_step(x, text, c2w, generator=torch.Generator().manual_seed(3))
        runs.append((grads, [p.detach().clone() for p in vsd.parameters]))
    (g1, p1), (g2, p2) = runs
    assert all(torch.count_nonzero(g) > 0 for g in g1)
    for a, b in zip(g1 + p1, g2 + p2):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="loss_scale"):
        VSDConfig(loss_scale=0.0)
