"""numpy's wasm-only code paths (third-party/numpy and third-party/openblas patches) are what runs,
and they give native numpy's answers.

Each patch gets a check that fails with the patch reverted, not only a check of the answer
(which numpy's generic code would give as well):
- radix sort: -0.0 and 0.0 compare equal, and numpy leaves their order open; the radix sort
  alone puts every -0.0 first (its keys are the bits), the introsort mixes them;
- simd128 exp, sin and cos: the guest's own libm (math.exp) is what numpy's generic loop
  calls, element for element; the simd128 polynomials differ from it in some last bits;
- FFT of real input through rfft: its result is the Hermitian mirror exactly, bit for bit,
  which a complex transform is not;
- the plan cache: a second transform of one length costs fewer wasm operators (wasmtime's
  fuel, a count) than the first, which computes the twiddle factors;
- OpenBLAS's simd128 DGEMM and DGEMV kernels: matmul and matrix-vector products cost fewer
  wasm operators per multiply-add than any scalar kernel can.
Correctness stays checked against native numpy of the same version (glibc's libm): numpy's own
accuracy tests skip on wasi, so this is where a wrong ULP shows.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, BuiltChain

pytestmark = pytest.mark.e2e

# The same script computes both sides: in the guest and natively. argv: the data folder, the output name.
COMPUTE = """
import math
import sys
import numpy as np
np.seterr(all="ignore")  # exp overflows to inf on purpose
folder, result = sys.argv[1:3]
data = dict(np.load(f"{folder}/in.npz"))
out = {}
def libm(function, value):
    try:
        return function(value)
    except (OverflowError, ValueError):  # math raises where C's libm gives inf or NaN
        return math.nan
for name in ("sin", "cos", "exp"):
    values = data["angles" if name != "exp" else "exponents"]
    out[name] = getattr(np, name)(values)
    # what numpy's generic loop computes: libm, element by element
    out[f"{name}_libm"] = np.array([libm(getattr(math, name), v) for v in values[:20000].tolist()])
for name, values in data.items():
    if name.startswith("sort_"):
        out[name] = np.sort(values)
out["fft"] = np.fft.fft(data["signal"])
out["fft_other_length"] = np.fft.fft(data["signal"][:1000])
out["fft_again"] = np.fft.fft(data["signal"])  # from the plan cache, after another length
np.savez(f"{folder}/{result}", **out)
"""

# Guest scripts whose wasm operator counts (fuel) are compared; argv: the repeat count.
FFT_REPEATS = """
import sys
import numpy as np
np.fft.fft(np.ones(1000))  # numpy.fft's first-use imports and allocations, at another length
signal = np.random.default_rng(0).standard_normal(16381)  # a prime: Bluestein, whose plan holds an FFT
for _ in range(int(sys.argv[1])):
    np.fft.fft(signal)
"""
BLAS_REPEATS = """
import sys
import numpy as np
rng = np.random.default_rng(0)
a, b, x = rng.standard_normal(({n}, {n})), rng.standard_normal(({n}, {n})), rng.standard_normal({n})
{op}  # the first call: buffers, dispatch
for _ in range(int(sys.argv[1])):
    {op}
"""
FUEL = 10**13


def with_specials(values: Any, specials: list[float]) -> Any:
    values = values.copy()
    values[3 : 3 + len(specials)] = specials  # inside the first SIMD step of four
    values[-len(specials) :] = specials  # and in the scalar tail
    return values


def inputs(np: Any) -> dict[str, Any]:
    with np.errstate(over="ignore"):
        return make_inputs(np)


def make_inputs(np: Any) -> dict[str, Any]:
    rng = np.random.default_rng(16)
    n = 200_003  # not a multiple of the four-element step
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, 1e300, np.pi, -np.pi / 2, 2.0**17, 1e-9]
    angles = np.concatenate([rng.uniform(-1, 1, n // 2), rng.uniform(-1e5, 1e5, n - n // 2)])
    exponents = rng.uniform(-760, 760, n)
    floats = rng.standard_normal(n) * 1e3
    floats[rng.integers(0, n, 50)] = np.nan
    floats[rng.integers(0, n, 50)] = -0.0
    zeros = np.zeros(4096)
    zeros[::2] = -0.0  # 0.0, -0.0, 0.0, ...: equal keys whose order only the radix sort fixes
    return {
        "angles": with_specials(angles, specials),
        "exponents": with_specials(exponents, [*specials, 709.0, 709.5, -708.0, -708.5, -745.2]),
        "sort_float64": with_specials(floats, specials),
        "sort_float32": with_specials(floats, specials).astype(np.float32),  # 1e300 -> inf
        "sort_int64": rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64),
        "sort_int32": rng.integers(-1000, 1000, n, dtype=np.int32),
        "sort_uint64": rng.integers(0, 2**64 - 1, n, dtype=np.uint64),
        "sort_short_float64": floats[:1000],  # under the radix sort's threshold
        "sort_signed_zeros": zeros,
        "sort_short_signed_zeros": zeros[:1000],  # under the threshold: the introsort's order
        "signal": rng.standard_normal(2**16),
    }


def ulp_distance(np: Any, a: Any, b: Any) -> Any:
    """How many float64 values lie between a and b (0 where both are the same NaN/inf/zero)."""
    ordered = [np.where(v.view(np.int64) < 0, np.int64(-(2**63)) - v.view(np.int64), v.view(np.int64))
               for v in (a, b)]
    distance = np.abs(ordered[0] - ordered[1])
    return np.where(np.isnan(a) & np.isnan(b), 0, distance)


@pytest.fixture(scope="module")
def np() -> Any:
    """Native numpy, the same version as the guest's (the test extra): only these tests need it."""
    return pytest.importorskip("numpy")


@pytest.fixture(scope="module")
def guest_and_native(np: Any, built_chain: BuiltChain, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    shared = tmp_path_factory.mktemp("numpy-kernels")
    np.savez(shared / "in.npz", **inputs(np))
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


class FuelMeter:
    """Runs guest scripts in python.wasm with fuel metering: the wasm operators each one executed."""

    def __init__(self, chain: BuiltChain, scripts: Path) -> None:
        from pipeline.runtime import wasm

        self.wasm, self.root, self.scripts = wasm, chain.runtime_root, scripts
        self.engine = wasm.make_engine(fuel=True)
        self.module = wasm.load_module(self.engine, self.root / "bin" / "python.wasm")

    def fuel(self, script: str, *args: str) -> int:
        (self.scripts / "script.py").write_text(script)
        run = self.wasm.WasiRun(
            argv=["python.wasm", "/scripts/script.py", *args],
            env={"PYTHONHOME": "/", "PYTHONHASHSEED": "0"},
            preopens=[(self.root, "/"), (self.scripts, "/scripts")], fuel=FUEL,
            stdout=self.scripts / "stdout", stderr=self.scripts / "stderr",
        )
        ended = self.wasm.run_wasi_metered(self.module, self.engine, run)
        assert ended.code == 0, (self.scripts / "stderr").read_text()[-3000:]
        assert ended.fuel_used is not None
        return ended.fuel_used

    def per_repeat(self, script: str, repeats: int = 2) -> list[int]:
        """The fuel of each of `repeats` runs of the script's loop body, in order."""
        totals = [self.fuel(script, str(count)) for count in range(repeats + 1)]
        return [after - before for before, after in itertools.pairwise(totals)]


@pytest.fixture(scope="module")
def meter(built_chain: BuiltChain, tmp_path_factory: pytest.TempPathFactory) -> FuelMeter:
    return FuelMeter(built_chain, tmp_path_factory.mktemp("fuel"))


@pytest.mark.parametrize("name", ["sin", "cos", "exp"])
def test_simd_math_is_within_one_ulp_of_native_libm(np: Any, guest_and_native: tuple[dict, dict], name: str) -> None:
    guest, native = guest_and_native
    # special values exactly: NaN where NaN, and every sign (the sign of zero too)
    assert np.array_equal(np.isnan(guest[name]), np.isnan(native[name]))
    assert np.array_equal(np.signbit(guest[name]), np.signbit(native[name]))
    distance = ulp_distance(np, guest[name], native[name])  # same signs: no overflow
    worst = int(distance.argmax())
    assert distance.max() <= 1, f"np.{name}: {distance.max()} ULP apart at element {worst}"


@pytest.mark.parametrize("name", ["sin", "cos", "exp"])
def test_simd_math_is_not_the_guests_libm(np: Any, guest_and_native: tuple[dict, dict], name: str) -> None:
    """numpy's generic float64 loop calls libm per element, as math.<name> does: equal bits.
    The simd128 loop's own polynomial differs from libm in the last bit of some elements."""
    guest, _ = guest_and_native
    libm = guest[f"{name}_libm"]
    ours = guest[name][: len(libm)]
    finite = np.isfinite(libm) & np.isfinite(ours)
    differing = int(np.count_nonzero(ours[finite] != libm[finite]))
    assert differing > 0, f"np.{name} gave libm's exact bits on all {int(finite.sum())} elements: not the simd128 loop"
    assert ulp_distance(np, ours[finite], libm[finite]).max() <= 2


def test_sort_orders_like_native_numpy(np: Any, guest_and_native: tuple[dict, dict]) -> None:
    guest, native = guest_and_native
    for name in (key for key in native if key.startswith("sort_")):
        # -0.0 and 0.0 are equal, and their order is unspecified: compare values, NaNs last
        assert np.array_equal(guest[name], native[name], equal_nan=True), name
        assert guest[name].dtype == native[name].dtype


def test_sort_of_long_arrays_is_the_radix_sort(np: Any, guest_and_native: tuple[dict, dict]) -> None:
    """Every -0.0 before every 0.0 (the radix sort's keys are the bits); below its threshold
    the introsort, which sees them as equal, leaves them mixed."""
    guest, _ = guest_and_native
    signs = np.signbit(guest["sort_signed_zeros"])
    half = len(signs) // 2
    assert signs[:half].all() and not signs[half:].any(), "np.sort did not order -0.0 before 0.0: not the radix sort"
    short = np.signbit(guest["sort_short_signed_zeros"])
    assert not (short[: len(short) // 2].all() and not short[len(short) // 2 :].any()), \
        "below the threshold the zeros should stay mixed (the control of this check)"


def test_fft_matches_native_after_another_length(np: Any, guest_and_native: tuple[dict, dict]) -> None:
    guest, native = guest_and_native
    for name in ("fft", "fft_other_length", "fft_again"):
        np.testing.assert_allclose(guest[name], native[name], rtol=1e-12, atol=1e-9, err_msg=name)
    assert np.array_equal(guest["fft"], guest["fft_again"])


def test_fft_of_real_input_is_the_mirrored_rfft(np: Any, guest_and_native: tuple[dict, dict]) -> None:
    """X[n-k] == conj(X[k]) bit for bit: the rfft half and its mirror. A complex transform
    gives that only to rounding (native numpy's does not, on this signal)."""
    guest, native = guest_and_native
    for result, exact in ((guest, True), (native, False)):
        spectrum = result["fft"]
        mirrored = np.array_equal(spectrum[1:][::-1], spectrum[1:].conj())
        assert mirrored == exact, "guest" if exact else "native numpy (the control of this check)"


def test_fft_plans_are_cached(meter: FuelMeter) -> None:
    """At the prime 16381 the plan (Bluestein: twiddles and an FFT of its chirp) is about 40 % of a
    first call: a repeat costs 0.62 of it with the cache (LLVM 19 and 22 alike), and as much as the
    first without it. (At 2^14 the plan is a smaller part, 0.82-0.93 against 0.98 without: too
    close to this VM's run-to-run noise of some 1e5 operators.)"""
    first, second = meter.per_repeat(FFT_REPEATS)
    assert second < 0.8 * first, f"a repeated fft cost {second} wasm operators, the first {first}: no plan cache"


@pytest.mark.parametrize(("operation", "op", "n", "most"), [
    # The most wasm operators a multiply-add may cost (fuel counts every operator, local
    # traffic included), at sizes where a run's own noise (some 1e5 operators: start-up
    # differs slightly between runs) is small beside the kernel's work. Measured with the
    # simd128 kernels: 3.4, 6.4 and 6.4; with the generic scalar ones (both patches
    # reverted): 9.7, 19.6 and 11.6.
    ("dgemm", "a @ b", 128, 5.5),
    ("dgemv", "a @ x", 1024, 11.0),
    ("dgemv transposed", "x @ a", 1024, 8.5),
])
def test_blas_kernels_are_simd128(meter: FuelMeter, operation: str, op: str, n: int, most: float) -> None:
    madds = n**3 if operation == "dgemm" else n**2
    first, second = meter.per_repeat(BLAS_REPEATS.format(op=op, n=n))
    per_madd = min(first, second) / madds
    assert per_madd <= most, f"{operation}: {per_madd:.2f} wasm operators per multiply-add (want <= {most})"
