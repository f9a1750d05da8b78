"""sdlib: score distillation (SDS, VSD, SteinDreamer's SSD) for text-to-3D, as a small package.

``import sdlib`` is light: it never imports diffusers, transformers, nerfacc or tinycudann;
modules that need them import them inside the functions that use them.
"""

__version__ = "0.1.0"
