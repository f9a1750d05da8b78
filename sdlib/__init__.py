"""sdlib: score distillation (SDS, VSD, SteinDreamer's SSD) for text-to-3D, as a small package.

``import sdlib`` is light: it never imports diffusers, transformers, nerfacc or tinycudann;
modules that need them import them inside the functions that use them. The flat names below
are the control-variate core (notebooks 10-12); the rest lives in subpackages:

* :mod:`sdlib.cameras`: camera sampling, view-dependent prompts, rays and projection;
* :mod:`sdlib.distill`: SDS, VSD and SSD gradients, one file per paper;
* :mod:`sdlib.figures`: figures with JSON sidecars, ``python -m sdlib.figures regenerate``;
* :mod:`sdlib.toy`: the 2-D score-distillation miniature of notebook 12.
"""

from sdlib.control_variates import (
    CoefficientConfig,
    EMACoefficient,
    LearnedCoefficient,
    apply_control_variate,
    coefficient_shape,
    optimal_coefficient,
    stein_control_variate,
    stein_control_variate_printed,
)
from sdlib.variance import (
    GradNormEMA,
    MeanComparison,
    VarianceReport,
    WelfordAccumulator,
    compare_means,
    mean_sq_norm,
    relative_variance,
    trace_covariance,
    variance_report,
)

__version__ = "0.1.0"

__all__ = [
    "CoefficientConfig",
    "EMACoefficient",
    "LearnedCoefficient",
    "apply_control_variate",
    "coefficient_shape",
    "optimal_coefficient",
    "stein_control_variate",
    "stein_control_variate_printed",
    "GradNormEMA",
    "MeanComparison",
    "VarianceReport",
    "WelfordAccumulator",
    "compare_means",
    "mean_sq_norm",
    "relative_variance",
    "trace_covariance",
    "variance_report",
]
