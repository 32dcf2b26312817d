"""Fuzzing of every parser of the product: targets, contract, engines (atheris, hypothesis), release runner."""
