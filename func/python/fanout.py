"""Fan-out: chain N calls (N from the input bytes, default 50). Each chained call sets its
index (its input) as its output; the main call sums the outputs and sets the total."""

from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_call_output, get_input, set_output


@faasm_func(1)
def part():
    set_output(get_input())


@faasm_main
def main():
    text = get_input().strip()
    n = int(text) if text else 50
    calls = [chain_this(1, str(index).encode()) for index in range(n)]
    failed = [(call, code) for call in calls if (code := await_call(call)) != 0]
    if failed:
        raise RuntimeError(f"chained calls failed (call id, exit code): {failed}")
    total = sum(int(get_call_output(call)) for call in calls)
    print(f"fan-out: {n} calls, sum of outputs {total}")
    set_output(str(total))
