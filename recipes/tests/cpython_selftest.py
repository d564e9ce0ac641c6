import sys, json, re, decimal, hashlib, zlib, bz2, lzma, sqlite3, asyncio
print(sys.version)
print(sys.platform, sys.prefix, sys.exec_prefix, sys.path)
data = json.dumps({"k": list(range(1000)), "s": "x" * 5000}).encode() * 10
for mod in (zlib, bz2, lzma):
    c = mod.compress(data)
    assert mod.decompress(c) == data
    print(mod.__name__, len(data), "->", len(c))
assert re.match(r"(\d+)-(\d+)", "12-34").groups() == ("12", "34")
assert decimal.Decimal("1.1") + decimal.Decimal("2.2") == decimal.Decimal("3.3")
print("sha256", hashlib.sha256(b"abc").hexdigest())
db = sqlite3.connect(":memory:")
db.execute("create table t(a, b)")
db.executemany("insert into t values (?, ?)", [(i, str(i)) for i in range(100)])
print("sqlite", sqlite3.sqlite_version, db.execute("select sum(a), count(b) from t").fetchone())
# asyncio imports, but no event loop on WASI (socketpair() -> ENOTSUP);
# drive a coroutine by hand instead.
async def main():
    return 42
try:
    main().send(None)
except StopIteration as e:
    assert e.value == 42
missing = [m for m in ("zlib", "_bz2", "_lzma", "_sqlite3") if m not in sys.builtin_module_names]
assert not missing, missing
print("builtins:", len(sys.builtin_module_names))
print("SELFTEST OK")
