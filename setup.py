"""Build hook for the native io_uring engine (cffi API mode).

Everything declarative lives in pyproject.toml; setuptools needs this file only
because cffi's extension builder plugs in through the `cffi_modules` keyword.
"""
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
