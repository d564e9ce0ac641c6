"""Sorted unique words, counted in C++."""

from cxxdemo._words import unique_sorted

__all__ = ["unique_sorted"]
