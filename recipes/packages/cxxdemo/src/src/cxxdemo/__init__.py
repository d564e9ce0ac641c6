"""Sorted unique words, counted in C++."""

from cxxdemo._words import nth_word, unique_sorted

__all__ = ["nth_word", "unique_sorted"]
