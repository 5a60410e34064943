"""A tiny calculator package: the example repository Firstmate's playbooks work on."""

from calc.ops import add, divide, mean, multiply

__all__ = ["add", "divide", "mean", "multiply"]
