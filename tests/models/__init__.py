"""Tests of the built-in architectures (models/)."""
