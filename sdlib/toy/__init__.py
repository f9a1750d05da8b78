"""CPU-only toy worlds for the 1x notebooks: an exact 2-D mixture prior, a 2-D point renderer
and SDS / VSD / SSD on them (:mod:`sdlib.toy.mixture`, :mod:`sdlib.toy.renderer`,
:mod:`sdlib.toy.distill`), and variance reduction with exact answers
(:mod:`sdlib.toy.variance_reduction`, notebook 13)."""

from sdlib.toy.mixture import GaussianMixture, particle_eps_pred, ring_mixture, vp_alpha_sigma
from sdlib.toy.renderer import (
    pullback_loss,
    render_affine,
    render_particles,
    rotation,
    sample_cameras,
)

__all__ = [
    "GaussianMixture",
    "particle_eps_pred",
    "pullback_loss",
    "render_affine",
    "render_particles",
    "ring_mixture",
    "rotation",
    "sample_cameras",
    "vp_alpha_sigma",
]
