"""gameday.forked: work in a forked child, its answer or its failure back in the parent."""

from __future__ import annotations

import os

import pytest

from gameday.errors import InputError
from gameday.forked import Forked, ForkedError


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _raise_bug() -> None:
    raise KeyError("missing")


def _raise_ours() -> None:
    raise InputError("--x", "a number", "abc", "pass a number")


def _exit() -> None:
    os._exit(7)


def test_the_answer_comes_from_another_process() -> None:
    big = list(range(100_000))  # inherited by the fork, not sent
    with Forked(lambda: (_pid_and(len(big)))) as child:
        pid, doubled = child.result()
    assert pid != os.getpid() and doubled == 200_000


def test_a_bug_in_the_child_comes_back_with_its_traceback() -> None:
    with Forked(_raise_bug) as child, pytest.raises(ForkedError) as caught:
        child.result()
    assert caught.value.kind == "KeyError"
    assert "Traceback" in caught.value.message and "_raise_bug" in caught.value.message


def test_our_own_error_comes_back_as_its_message() -> None:
    with Forked(_raise_ours) as child, pytest.raises(ForkedError) as caught:
        child.result()
    assert caught.value.kind == "InputError" and "Traceback" not in caught.value.message
    assert "--x" in caught.value.message and "abc" in caught.value.message


def test_a_child_that_ends_without_answering_says_its_exit_code() -> None:
    with Forked(_exit) as child, pytest.raises(ForkedError, match=r"exit code 7\) without answering"):
        child.result()


def test_leaving_reaps_a_child_that_was_never_asked() -> None:
    child = Forked(_pid_and, 1)
    with child:
        pass
    assert not child._child.is_alive() and child._child.exitcode == 0


def test_no_fork_while_another_thread_runs() -> None:
    import threading

    from gameday.forked import cpus, may_fork

    assert may_fork() == (cpus() > 1)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not may_fork()
    finally:
        stop.set()
        other.join()
