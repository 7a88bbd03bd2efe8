"""Worker pools of generators: joined at a normal end, never when abandoned."""

from __future__ import annotations

import threading
import time

import numpy as np

from maskcli.core import packing
from maskcli.core.packing import Packer, PackOptions
from maskcli.core.padding import Ragged
from maskcli.core.workers import worker_pool


def _ahead(release: threading.Event, started: threading.Event):
    with worker_pool(1, "test-ahead") as pool:
        running = pool.submit(lambda: started.set() or release.wait(10))
        queued = pool.submit(lambda: "never")
        yield running, queued


def test_an_abandoned_generator_does_not_wait_for_its_workers():
    """Closing it (as the garbage collector does, in any thread) returns at once:
    joining there hung the suite in Thread.start."""
    release, started = threading.Event(), threading.Event()
    generator = _ahead(release, started)
    running, queued = next(generator)
    assert started.wait(5)
    begin = time.perf_counter()
    generator.close()
    assert time.perf_counter() - begin < 1  # the running task still holds its thread
    assert queued.cancelled() and not running.done()
    release.set()
    assert running.result(5) is True


def test_a_finished_generator_joins_its_workers():
    done = []

    def ahead():
        with worker_pool(2, "test-joined") as pool:
            futures = [pool.submit(lambda i=i: time.sleep(0.05) or done.append(i))
                       for i in range(4)]
            yield futures

    for _ in ahead():
        pass
    assert sorted(done) == [0, 1, 2, 3]
    assert not [thread for thread in threading.enumerate()
                if thread.name.startswith("test-joined")]


def test_packing_abandoned_with_a_window_in_flight_closes_at_once(monkeypatch):
    release = threading.Event()
    real = packing.pack_window

    def slow(window, *args, **kwargs):
        if window[0].first > 0:  # every window but the first waits
            release.wait(10)
        return real(window, *args, **kwargs)

    monkeypatch.setattr(packing, "pack_window", slow)
    lengths = np.full(40, 3)
    chunk = (Ragged(np.arange(120), lengths),)
    rows = Packer(("ids",), PackOptions(8, window=10), (0,), workers=2).pack([chunk])
    first = next(rows)
    assert first.documents.tolist()[:2] == [0, 1]
    begin = time.perf_counter()
    rows.close()
    assert time.perf_counter() - begin < 1
    release.set()
