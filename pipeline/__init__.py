"""A declarative, content-keyed build pipeline for Python on WebAssembly.

Data flows one way: recipe files -> validated models (spec) -> graph -> keys ->
doit tasks -> builders -> build/ and the artifact cache.
"""

ENGINE_VERSION = "1"
