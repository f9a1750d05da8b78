"""Score distillation estimators, one file per paper (diffusers' single-file rule).

* :mod:`sdlib.distill.common`: timesteps, noising, weighting ω(t), the pull-back loss.
* :mod:`sdlib.distill.estimator`: the one interface (``control``, ``update``, state) and the
  shared draws every estimator sees.
* :mod:`sdlib.distill.sds`: DreamFusion's SDS.
* :mod:`sdlib.distill.vsd`: ProlificDreamer's VSD (LoRA UNet with a camera embedding).
* :mod:`sdlib.distill.ssd`: SteinDreamer's SSD (Stein control variate, learned μ).
"""

from sdlib.distill.common import (
    TimestepConfig,
    add_noise,
    alpha_sigma,
    decoded_pullback_loss,
    pullback_loss,
    sample_timesteps,
    t_range_at,
    weighting,
)
from sdlib.distill.estimator import Draw, Estimate, Estimator, Priors, distillation_gradient
from sdlib.distill.sds import SDS, sds_gradient
from sdlib.distill.ssd import (
    SSD,
    SSDConfig,
    constant_baseline,
    depth_baseline,
    masked_pearson,
    normal_baseline,
    ssd_gradient,
)
from sdlib.distill.vsd import VSD, VSDConfig, vsd_gradient

ESTIMATORS: dict[str, type] = {"sds": SDS, "vsd": VSD, "ssd": SSD}
"""Method name → estimator class: the one place a new estimator is listed (TrainConfig.method
takes these names)."""

__all__ = [
    "ESTIMATORS",
    "Draw",
    "Estimate",
    "Estimator",
    "Priors",
    "distillation_gradient",
    "SDS",
    "TimestepConfig",
    "add_noise",
    "alpha_sigma",
    "decoded_pullback_loss",
    "pullback_loss",
    "sample_timesteps",
    "t_range_at",
    "weighting",
    "sds_gradient",
    "SSD",
    "SSDConfig",
    "constant_baseline",
    "depth_baseline",
    "masked_pearson",
    "normal_baseline",
    "ssd_gradient",
    "VSD",
    "VSDConfig",
    "vsd_gradient",
]
