"""numpy's wasm-only code paths (third-party/numpy patches) give native numpy's answers.

python.wasm of the built chain sorts (radix sort), takes exp, sin and cos (simd128) and FFTs
(plan cache) of inputs made here; native numpy of the same version computes the same, with
glibc's libm. numpy's own accuracy tests skip on wasi (test_umath_accuracy runs on x86 Linux
only), so this is where a wrong ULP shows. Each array is contiguous and long enough to take
the patched path, and holds the values that must leave it (NaN, inf, huge, subnormal, -0.0).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, BuiltChain

try:
    import numpy as np
except ImportError:  # native numpy is the reference: without it the tests skip; collection never fails
    np = None  # type: ignore[assignment]

# skipif is decided before any fixture: a machine without native numpy never builds the chain for nothing
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(np is None, reason="native numpy (the reference) is not installed")]

# The same script computes both sides: in the guest and natively. argv: the data folder, the output name.
COMPUTE = """
import sys
import numpy as np
np.seterr(all="ignore")  # exp overflows to inf on purpose
folder, result = sys.argv[1:3]
data = dict(np.load(f"{folder}/in.npz"))
out = {}
for name in ("sin", "cos", "exp"):
    out[name] = getattr(np, name)(data["angles" if name != "exp" else "exponents"])
for name, values in data.items():
    if name.startswith("sort_"):
        out[name] = np.sort(values)
out["fft"] = np.fft.fft(data["signal"])
out["fft_other_length"] = np.fft.fft(data["signal"][:1000])
out["fft_again"] = np.fft.fft(data["signal"])  # from the plan cache, after another length
np.savez(f"{folder}/{result}", **out)
"""


def with_specials(values: np.ndarray, specials: list[float]) -> np.ndarray:
    values = values.copy()
    values[3 : 3 + len(specials)] = specials  # inside the first SIMD step of four
    values[-len(specials) :] = specials  # and in the scalar tail
    return values


def inputs() -> dict[str, np.ndarray]:
    with np.errstate(over="ignore"):
        return make_inputs()


def make_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(16)
    n = 200_003  # not a multiple of the four-element step
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, 1e300, np.pi, -np.pi / 2, 2.0**17, 1e-9]
    angles = np.concatenate([rng.uniform(-1, 1, n // 2), rng.uniform(-1e5, 1e5, n - n // 2)])
    exponents = rng.uniform(-760, 760, n)
    floats = rng.standard_normal(n) * 1e3
    floats[rng.integers(0, n, 50)] = np.nan
    floats[rng.integers(0, n, 50)] = -0.0
    return {
        "angles": with_specials(angles, specials),
        "exponents": with_specials(exponents, [*specials, 709.0, 709.5, -708.0, -708.5, -745.2]),
        "sort_float64": with_specials(floats, specials),
        "sort_float32": with_specials(floats, specials).astype(np.float32),  # 1e300 -> inf
        "sort_int64": rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
        "sort_int32": rng.integers(-1000, 1000, n, dtype=np.int32),
        "sort_uint64": rng.integers(0, 2**64 - 1, n, dtype=np.uint64),
        "sort_short_float64": floats[:1000],  # under the radix sort's threshold
        "signal": rng.standard_normal(2**16),
    }


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float64 values lie between a and b (0 where both are the same NaN/inf/zero)."""
    ordered = [np.where(v.view(np.int64) < 0, np.int64(-(2**63)) - v.view(np.int64), v.view(np.int64))
               for v in (a, b)]
    distance = np.abs(ordered[0] - ordered[1])
    return np.where(np.isnan(a) & np.isnan(b), 0, distance)


@pytest.fixture(scope="module")
def guest_and_native(built_chain: BuiltChain, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    shared = tmp_path_factory.mktemp("numpy-kernels")
    np.savez(shared / "in.npz", **inputs())
    (shared / "compute.py").write_text(COMPUTE)
    root = built_chain.runtime_root
    runs = {
        "guest.npz": [sys.executable, "-m", "pipeline.runtime.wasm", "run", "--dir", f"{root}::/",
                      "--dir", f"{shared}::/data", "--env", "PYTHONHOME=/", str(root / "bin/python.wasm"),
                      "/data/compute.py", "/data", "guest.npz"],
        "native.npz": [sys.executable, str(shared / "compute.py"), str(shared), "native.npz"],
    }
    for argv in runs.values():
        ran = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
        assert ran.returncode == 0, ran.stderr[-3000:]
    guest, native = (dict(np.load(shared / result)) for result in runs)
    return guest, native


@pytest.mark.parametrize("name", ["sin", "cos", "exp"])
def test_simd_math_is_within_one_ulp_of_native_libm(guest_and_native: tuple[dict, dict], name: str) -> None:
    guest, native = guest_and_native
    # special values exactly: NaN where NaN, and every sign (the sign of zero too)
    assert np.array_equal(np.isnan(guest[name]), np.isnan(native[name]))
    assert np.array_equal(np.signbit(guest[name]), np.signbit(native[name]))
    distance = ulp_distance(guest[name], native[name])  # same signs: no overflow
    worst = int(distance.argmax())
    assert distance.max() <= 1, f"np.{name}: {distance.max()} ULP apart at element {worst}"


def test_sort_orders_like_native_numpy(guest_and_native: tuple[dict, dict]) -> None:
    guest, native = guest_and_native
    for name in (key for key in native if key.startswith("sort_")):
        # -0.0 and 0.0 are equal, and their order is unspecified: compare values, NaNs last
        assert np.array_equal(guest[name], native[name], equal_nan=True), name
        assert guest[name].dtype == native[name].dtype


def test_fft_matches_native_after_another_length(guest_and_native: tuple[dict, dict]) -> None:
    guest, native = guest_and_native
    for name in ("fft", "fft_other_length", "fft_again"):
        np.testing.assert_allclose(guest[name], native[name], rtol=1e-12, atol=1e-9, err_msg=name)
    assert np.array_equal(guest["fft"], guest["fft_again"])

