"""A chained call that raises: the caller sees its non-zero exit code and carries on."""

from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main


@faasm_func(1)
def broken():
    raise ValueError("chained call failed on purpose")


@faasm_main
def main():
    call = chain_this(1)
    code = await_call(call)
    print(f"chained call {call} returned exit code {code}")
    assert code != 0
