"""The seed's example function: a message and the Python version."""

import sys

print("Hello from Python on WebAssembly!")
print(f"Python version: {sys.version.split()[0]} ({sys.platform})")
