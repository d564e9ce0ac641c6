"""pyfaasm._host is the one C extension: it binds the "faasm" host imports."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pyfaasm._host", sources=["src/pyfaasm/_host.c"])])
