"""Real numpy work inside the runtime: linear algebra, FFT and seeded random numbers.

Every check prints one line; the `random` lines must equal native numpy's for the same
seed (tests/test_chain.py runs this file on both and compares them).
"""

import os
import sys
import tempfile

import numpy as np

N = 200
SEED = 20261125

if sys.platform == "wasi":  # linked into python.wasm (no dlopen); native numpy loads .so files
    assert "numpy._core._multiarray_umath" in sys.builtin_module_names
print(f"numpy {np.__version__} on {sys.platform}")

# Matrix multiply and solve a well-conditioned 200x200 system; check the residual.
rng = np.random.default_rng(SEED)
a = rng.random((N, N)) + N * np.eye(N)
x_true = rng.random(N)
b = a @ x_true
x = np.linalg.solve(a, b)
residual = np.linalg.norm(a @ x - b) / np.linalg.norm(b)
assert residual < 1e-12, residual
assert np.allclose(x, x_true, rtol=1e-10)
print(f"linalg: {N}x{N} matmul + solve, relative residual {residual:.2e}")

# FFT round trip, and a known transform: a pure tone puts its energy in one bin.
signal = rng.standard_normal(1024)
back = np.fft.ifft(np.fft.fft(signal))
error = np.max(np.abs(back.real - signal)) + np.max(np.abs(back.imag))
assert error < 1e-12, error
tone = np.cos(2 * np.pi * 50 * np.arange(1024) / 1024)
assert int(np.argmax(np.abs(np.fft.rfft(tone)))) == 50
print(f"fft: 1024-point round trip, max error {error:.2e}; tone found in bin 50")

# np.save / np.load through a real file (the runtime gives each call a scratch /tmp).
path = os.path.join(tempfile.gettempdir(), "solution.npy")
np.save(path, x)
assert np.array_equal(np.load(path), x)
print(f"save/load: {os.path.getsize(path)} bytes round trip")

# Seeded random numbers: bit-for-bit what native numpy gives for the same seed.
fresh = np.random.default_rng(SEED)
print("random uniform:", repr(fresh.random(4).tolist()))
print("random integers:", fresh.integers(0, 1_000_000, size=6).tolist())
print("random normal:", repr(fresh.standard_normal(3).tolist()))
legacy = np.random.RandomState(SEED)
print("random legacy:", repr(legacy.rand(3).tolist()))
print("numpy demo ok")
