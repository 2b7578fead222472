"""How many threads keel's own numeric libraries may use: one per process unless told.

scikit-learn's gradient boosting (the domain classifier, the diagnosis
surrogate, the loss models) runs OpenMP, and numpy's BLAS runs its own pool;
each takes every core by default. On a shared 2-core machine that made a
monitor run over small windows more than ten times slower than one thread,
and it fights keel's own per-core workers (``keel.parallel``). So every keel
process limits them through ``threadpoolctl`` — setting ``OMP_NUM_THREADS``
after numpy or scikit-learn are imported does nothing — to ``KEEL_THREADS``
(default 1). Library calls that fit models run inside ``limited()``; the CLI
and each worker process call ``limit_process()`` once.

>>> import os
>>> os.environ["KEEL_THREADS"] = "2"
>>> thread_count()
2
>>> del os.environ["KEEL_THREADS"]
>>> with limited():
...     thread_count()
1
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_PROCESS_LIMIT: Any = None


def thread_count() -> int:
    """``KEEL_THREADS`` as a positive integer (default 1)."""
    from keel.errors import ConfigError

    text = os.environ.get("KEEL_THREADS", "1").strip()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"KEEL_THREADS must be a whole number of threads ≥ 1, not {text!r}")
    return count


@contextmanager
def limited() -> Iterator[None]:
    """Limit BLAS and OpenMP pools to ``thread_count()`` within the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=thread_count()):
        yield


def limit_process() -> None:
    """Limit this process's pools for the rest of its life (CLI entry, worker processes)."""
    global _PROCESS_LIMIT
    from threadpoolctl import threadpool_limits

    count = thread_count()
    os.environ.setdefault("OMP_NUM_THREADS", str(count))  # for libraries not loaded yet
    _PROCESS_LIMIT = threadpool_limits(limits=count)


def with_limited_threads(function: Any) -> Any:
    """Decorate a function that fits or applies a model: it runs inside ``limited()``."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with limited():
            return function(*args, **kwargs)

    return wrapper
