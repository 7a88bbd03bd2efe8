"""Worker threads for generators that read, parse or pack ahead.

A generator that holds a thread pool may be abandoned half way: its consumer
stops early, or fails, and the generator is closed later by the garbage
collector, in whatever thread happens to collect it. Joining the workers
there can hang the process: CPython can collect it inside ``threading``'s
own bookkeeping of a thread being started, with a lock held that joining
takes again (seen: the test suite stopped for good in ``Thread.start``). So
an abandoned generator's pool is shut down without waiting: work not started
is cancelled, and a task already running ends on its own thread. On a normal
end the workers are joined as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


@contextlib.contextmanager
def worker_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A ``ThreadPoolExecutor`` of ``workers`` threads named ``name``, for a
    generator: joined when the block ends normally, never when it is left by
    an exception or ``GeneratorExit``."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
