"""Never finishes: for the time limit (run with --timeout). The chained call spins; the
main call waits for it (waiting is not charged to its own limit) and reports its code.
With input "main" the main call spins itself."""

from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_input


@faasm_func(1)
def spin():
    while True:
        pass


@faasm_main
def main():
    if get_input() == b"main":
        spin()
    call = chain_this(1)
    print(f"slow call {call} returned exit code {await_call(call)}")
