from setuptools import Extension, setup

setup(
    packages=["cxxdemo"],
    package_dir={"": "src"},
    ext_modules=[Extension("cxxdemo._words", ["src/cxxdemo/_words.cpp"], language="c++")],
)
