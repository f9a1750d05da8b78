"""Why do distilled ShapeZoo objects get their colours wrong? Cheap CPU experiments (issue 11.4).

No NeRF: the "render" is the object's true silhouette at 4 evaluation cameras (azimuth 0, 90,
180, 270; elevation 15) filled with a free colour per pixel, ``rgb = sigmoid(p) * mask + white *
(1 - mask)`` (the geometry is right, only colour is learned), or the prior's latent itself.
SDS under the shipped ShapeZoo-SD, Adam, ``steps`` steps; the score is ``color_delta_e`` (mean
CIE76 ΔE inside the true mask, :func:`sdlib.shapezoo.metrics.color_error`) and the mean RGB
inside the mask, against the true renders.

Sections (one table each):

A. plain-bug checks without optimisation: VAE round trip of the true renders (RGB order, value
   range, scaling factor), with a swapped-channel and a wrong-range positive control; the latent
   statistics the UNet was trained on (posterior mean spread vs posterior noise);
   ``D(E(x))`` of a bear recoloured magenta.
B. the prior's own samples (DDIM) for the prompt: mean colour of their non-white pixels.
C. image-space SDS: pull-back through the VAE encoder (what the trainer does) vs on the latent,
   guidance scale, initial colour, view suffixes, timestep range, weighting, and the decoded-target
   pull-back (``TrainConfig.pullback="decoded"``).

    PYTHONPATH=. python scripts/colour_diagnosis.py               # ~5-8 min on 2 CPU cores
    PYTHONPATH=. python scripts/colour_diagnosis.py --quick       # ~2 min: the key rows only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sdlib.cameras import eval_cameras
from sdlib.distill.common import TimestepConfig, add_noise, sample_timesteps, weighting
from sdlib.priors import DiffusionPrior
from sdlib.shapezoo import render
from sdlib.shapezoo.metrics import color_error

T = 1000


def views(prompt: str, n: int = 4):
    cams = eval_cameras(8)[torch.arange(0, 8, 8 // n)]
    return cams, render(prompt, cams, 64, 64)


def mean_rgb(images_bhwc: torch.Tensor, mask: torch.Tensor) -> list[float]:
    return [round(v, 3) for v in images_bhwc[mask > 0.5].mean(0).tolist()]


def distil(sd: DiffusionPrior, prompt: str, param: str = "pixel", s: float = 7.5,
           steps: int = 150, t_min: float = 0.02, t_max: float = 0.98, view_suffix: bool = True,
           init: tuple[float, float, float] = (0.5, 0.5, 0.5), pullback: str = "latent",
           weight: str = "sigma2", seed: int = 0) -> dict:
    """SDS on 4 views of ``prompt``: ``param`` "pixel" (colour logits inside the true mask,
    through the VAE encoder) or "latent" (the latent itself, decoded to score)."""
    g = torch.Generator().manual_seed(seed)
    cams, truth = views(prompt)
    n, mask = len(cams.azimuth), truth.mask[:, None]
    emb = sd.text_embeddings(prompt)
    text = emb.for_views(cams.view_indices()) if view_suffix else emb.repeat(n)
    tc = TimestepConfig(t_min=t_min, t_max=t_max, weighting=weight)
    abar = sd.alphas_cumprod
    colour = torch.tensor(init).view(1, 3, 1, 1)
    if param == "latent":
        with torch.no_grad():
            p = torch.nn.Parameter(sd.encode_images(colour * mask + (1 - mask)).clone())
        opt = torch.optim.Adam([p], lr=0.05)

        def image():
            return sd.decode_latents(p)

        def latent():
            return p
    else:
        p = torch.nn.Parameter(torch.logit(colour).repeat(n, 1, 64, 64))
        opt = torch.optim.Adam([p], lr=0.03)

        def image():
            return torch.sigmoid(p) * mask + (1 - mask)

        def latent():
            return sd.encode_images(image())
    for i in range(steps):
        x = latent()
        t = sample_timesteps(tc, i, n, T, generator=g)
        eps = torch.randn(x.shape, generator=g)
        with torch.no_grad():
            eps_hat = sd.predict_noise(add_noise(x.detach(), eps, abar, t), t, text, s)
        grad = weighting(tc, abar, t).view(-1, 1, 1, 1) * (eps_hat - eps)
        opt.zero_grad(set_to_none=True)
        if pullback == "decoded":  # the image is pulled to the decoded target D(x - grad)
            with torch.no_grad():
                target = sd.decode_latents(x.detach() - grad)
            loss = 0.5 * (image() - target).pow(2).sum()
        else:
            loss = 0.5 * (x - (x - grad).detach()).pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        img = image().permute(0, 2, 3, 1)
    return {"delta_e": color_error(img, truth.rgb, truth.mask)["color_delta_e"],
            "rgb": mean_rgb(img, truth.mask), "true_rgb": mean_rgb(truth.rgb, truth.mask)}


@torch.no_grad()
def section_a(sd: DiffusionPrior, prompts: list[str]) -> list[dict]:
    rows = []
    for prompt in prompts:
        _, truth = views(prompt)
        x = truth.rgb.permute(0, 3, 1, 2)

        def roundtrip(images):
            return sd.decode_latents(sd.encode_images(images)).permute(0, 2, 3, 1)

        post = sd.vae.encode(2 * x - 1).latent_dist
        bear_bgr = roundtrip(x.flip(1)).flip(-1)  # a BGR/RGB swap between render and VAE
        wrong_range = roundtrip(2 * x - 1)  # a render already in [-1, 1] mapped again
        rows.append({
            "prompt": prompt,
            "roundtrip_delta_e": color_error(roundtrip(x), truth.rgb, truth.mask)["color_delta_e"],
            "control_bgr_delta_e": color_error(bear_bgr, truth.rgb, truth.mask)["color_delta_e"],
            "control_range_delta_e": color_error(wrong_range.clamp(0, 1), truth.rgb,
                                                 truth.mask)["color_delta_e"],
            "latent_std": float((post.mean * sd.scaling_factor).std()),
            "posterior_noise_std": float((post.std * sd.scaling_factor).mean()),
        })
    # the encoder/decoder pair and an off-palette colour: the bear recoloured towards magenta
    _, truth = views("a brown teddy bear")
    x = truth.rgb.permute(0, 3, 1, 2)
    mask = truth.mask[:, None]
    shift = torch.tensor([0.08, -0.03, 0.09]).view(1, 3, 1, 1)
    magenta = (x + shift * mask).clamp(0, 1)
    z_b, z_m = sd.encode_images(x), sd.encode_images(magenta)
    rec = sd.decode_latents(z_m).permute(0, 2, 3, 1)
    rows.append({
        "prompt": "a brown teddy bear, recoloured magenta",
        "input_rgb": mean_rgb(magenta.permute(0, 2, 3, 1), truth.mask),
        "decoded_rgb": mean_rgb(rec, truth.mask),
        "true_rgb": mean_rgb(truth.rgb, truth.mask),
        "latent_shift_per_element": float((z_m - z_b).pow(2).mean().sqrt()),
        "posterior_noise_std": float((sd.vae.encode(2 * x - 1).latent_dist.std
                                      * sd.scaling_factor).mean()),
    })
    return rows


@torch.no_grad()
def section_b(sd: DiffusionPrior, prompts: list[str], n: int = 4) -> list[dict]:
    rows = []
    for prompt in prompts:
        _, truth = views(prompt)
        for s in (3.0, 7.5):
            imgs = sd.sample([f"{prompt}, front view"] * n, num_inference_steps=20,
                             guidance_scale=s, generator=torch.Generator().manual_seed(0))
            hwc = imgs.permute(0, 2, 3, 1)
            fg = (hwc.min(-1).values < 0.9).float()  # non-white pixels
            rows.append({"prompt": prompt, "guidance": s, "sample_rgb": mean_rgb(hwc, fg),
                         "true_rgb": mean_rgb(truth.rgb, truth.mask)})
    return rows


def section_c(sd: DiffusionPrior, prompts: list[str], steps: int, quick: bool) -> list[dict]:
    teddy = "a brown teddy bear"
    blue = (0.3, 0.3, 0.7)
    runs: list[tuple[str, str, dict]] = [
        ("encoder pull-back (trainer), s=7.5", teddy, {}),
        ("latent optimised directly, s=7.5", teddy, {"param": "latent"}),
        ("encoder, init blue", teddy, {"init": blue}),
        ("latent, init blue", teddy, {"param": "latent", "init": blue}),
        ("decoded target, s=7.5", teddy, {"pullback": "decoded"}),
        ("decoded target, init blue", teddy, {"pullback": "decoded", "init": blue}),
    ]
    if not quick:
        runs += [
            ("encoder, s=3", teddy, {"s": 3.0}),
            ("encoder, s=20", teddy, {"s": 20.0}),
            ("encoder, s=100", teddy, {"s": 100.0}),
            ("latent, s=3", teddy, {"param": "latent", "s": 3.0}),
            ("latent, s=100", teddy, {"param": "latent", "s": 100.0}),
            ("encoder, no view suffix", teddy, {"view_suffix": False}),
            ("encoder, t in [0.2, 0.98]", teddy, {"t_min": 0.2}),
            ("encoder, t in [0.02, 0.5]", teddy, {"t_max": 0.5}),
            ("encoder, w(t) = 1", teddy, {"weight": "uniform"}),
            ("decoded target, s=100", teddy, {"pullback": "decoded", "s": 100.0}),
        ]
        for prompt in prompts:
            if prompt != teddy:
                runs += [("encoder pull-back (trainer), s=7.5", prompt, {}),
                         ("latent optimised directly, s=7.5", prompt, {"param": "latent"}),
                         ("decoded target, s=7.5", prompt, {"pullback": "decoded"})]
    rows = []
    for name, prompt, kw in runs:
        t0 = time.time()
        r = distil(sd, prompt, steps=steps, **kw)
        rows.append({"setting": name, "prompt": prompt, **r, "seconds": round(time.time() - t0)})
        print(f"  {name:38s} {prompt[:32]:32s} ΔE {r['delta_e']:5.1f}  rgb {r['rgb']}  "
              f"(true {r['true_rgb']})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="SDS steps per experiment")
    ap.add_argument("--quick", action="store_true", help="the key rows only")
    ap.add_argument("--prompts", nargs="+", default=["a brown teddy bear",
                                                     "a red mushroom with white spots",
                                                     "a table lamp with a yellow shade"])
    ap.add_argument("--json", default="", help="also write the tables here")
    args = ap.parse_args()
    torch.manual_seed(0)
    sd = DiffusionPrior(model="shapezoo", device="cpu")

    print("A. plain-bug checks (4 eval views per prompt)")
    a = section_a(sd, args.prompts)
    for r in a:
        print("  " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r.items()))
    print("B. the prior's own samples, 'front view', DDIM 20 steps, 4 samples")
    b = section_b(sd, args.prompts[:1] if args.quick else args.prompts)
    for r in b:
        print(f"  {r['prompt'][:32]:32s} s={r['guidance']:<4} samples rgb {r['sample_rgb']}  "
              f"(true {r['true_rgb']})")
    print(f"C. image-space SDS, {args.steps} Adam steps, 4 views, colour inside the true mask")
    c = section_c(sd, args.prompts, args.steps, args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps({"A": a, "B": b, "C": c}, indent=1))


if __name__ == "__main__":
    main()
