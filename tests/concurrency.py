"""Running one action from many threads at once against the real database."""

import threading

from django.db import connection


def race(count: int, act) -> list:
    """Run `act(n)` for n in 0…count-1 in `count` threads released together, each on its
    own database connection; returns each result, or the exception it raised."""
    start = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(n: int) -> None:
        try:
            start.wait()
            outcomes[n] = act(n)
        except Exception as exc:  # the outcome under test
            outcomes[n] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
