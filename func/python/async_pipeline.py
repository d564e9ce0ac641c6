"""An `async def` function: tasks, a queue, gather, a timeout and a TaskGroup in one call's event loop.

The main call also chains an async function (entry 1) and awaits its output.
"""

import asyncio

from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main, get_call_output, get_input, set_output


@faasm_func(1)
async def square():
    await asyncio.sleep(0.01)
    number = int(get_input() or b"0")
    set_output(str(number * number).encode())


async def produce(queue: asyncio.Queue, count: int) -> None:
    for item in range(count):
        await queue.put(item)
    await queue.put(None)


async def consume(queue: asyncio.Queue) -> int:
    total = 0
    while (item := await queue.get()) is not None:
        total += item
    return total


@faasm_main
async def main():
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    _, total = await asyncio.gather(produce(queue, 100), consume(queue))
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
        timed_out = False
    except TimeoutError:
        timed_out = True
    async with asyncio.TaskGroup() as group:
        parts = [group.create_task(asyncio.sleep(0.01 * i, result=i)) for i in range(5)]
    call = chain_this(1, b"12")
    status = await_call(call)
    print(f"async: queue sum {total}, timeout {'fired' if timed_out else 'missed'}, "
          f"task group {[p.result() for p in parts]}, chained square {get_call_output(call).decode()} (exit {status})")
    set_output(str(total).encode())
