"""Recipes: one TOML file takes a dataset, a knowledge base and a teacher to evaluated students (``kard run``)."""

from kard_chain.recipe.config import Recipe
from kard_chain.recipe.loading import RecipeError, load_recipe, packaged_recipe
from kard_chain.recipe.runner import run_recipe

__all__ = ["Recipe", "RecipeError", "load_recipe", "packaged_recipe", "run_recipe"]
