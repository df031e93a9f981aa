"""Search spaces: NAS-Bench-201 (``nb201``), NAS-Bench-101 (``nb101`` per
graph, ``nb101_masked`` for every spec in one network) and the NDS cell
spaces (``nds``), each a genotype codec, sampler, mutation, parameter count
and Flax network; ``api`` puts them behind one ``Space`` protocol and
``registry`` names them (``get(name)``, ``build(name, ...)``)."""

from ntkjax.spaces.registry import NAMES, SpaceEntry, build, get

__all__ = ["NAMES", "SpaceEntry", "build", "get"]
