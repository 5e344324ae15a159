"""Synthetic scenes: georeferenced optical + thermal rasters of mining sites and look-alikes, with truth.

``generate_scenes`` is the entry point (the ``minewatch synth`` command); the look of a scene is set by
a recipe (configs/synth/default.yaml). Modules: recipe (config), geo (where/when/sun), landcover
(procedural landscape), objects / mining / lookalikes / urban / marina (geometry in metres), appearance
(randomised looks per site), plan (all random choices), render_optical, render_thermal, background (real
orthophotos), water (water on them), match (pasting in their tone, blur and noise), writer (files), preview.
"""

from minewatch.datasets.synth.generate import generate_scene, generate_scenes
from minewatch.datasets.synth.plan import GENERATOR_VERSION, make_plan
from minewatch.datasets.synth.recipe import SynthRecipe, load_recipe

__all__ = ["GENERATOR_VERSION", "SynthRecipe", "generate_scene", "generate_scenes", "load_recipe", "make_plan"]
