"""Real work with each default runtime package, C extensions included."""

import sys

import genshi
import markupsafe
import msgpack
import pyaes
import six
from genshi.template import MarkupTemplate

# pyaes: AES-CTR encrypt then decrypt
key = bytes(range(32))
plain = b"serverless python on wasm " * 4
secret = pyaes.AESModeOfOperationCTR(key).encrypt(plain)
assert secret != plain and pyaes.AESModeOfOperationCTR(key).decrypt(secret) == plain
print(f"pyaes: AES-256-CTR round trip of {len(plain)} bytes ok")

# genshi: render a template, with its C speedups built in
assert "genshi._speedups" in sys.builtin_module_names
template = MarkupTemplate('<ul xmlns:py="http://genshi.edgewall.org/"><li py:for="n in items">${n}</li></ul>')
html = template.generate(items=["a<b", "c"]).render("xhtml")
assert html == "<ul><li>a&lt;b</li><li>c</li></ul>", html
print(f"genshi {genshi.__version__}: {html}")

# markupsafe: escape through the C speedups
from markupsafe import _speedups  # noqa: E402

assert "markupsafe._speedups" in sys.builtin_module_names
print(f"markupsafe {markupsafe.__version__}: {markupsafe.escape('<b>&</b>')} via {_speedups}")
assert str(markupsafe.escape("<b>&</b>")) == "&lt;b&gt;&amp;&lt;/b&gt;"

# msgpack: round trip through the C extension
from msgpack import _cmsgpack  # noqa: E402

assert "msgpack._cmsgpack" in sys.builtin_module_names
data = {"ints": list(range(10)), "text": "héllo", "nested": {"ok": True, "f": 1.5}}
packed = msgpack.packb(data)
assert msgpack.unpackb(packed) == data and msgpack.Packer is _cmsgpack.Packer
print(f"msgpack {msgpack.version}: {len(packed)} bytes round trip via {_cmsgpack}")

print(f"six {six.__version__}: PY3={six.PY3}")
print("packages demo ok")
