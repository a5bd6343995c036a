"""Imports every module that registers built-in architectures."""

from . import lenet  # noqa: F401
