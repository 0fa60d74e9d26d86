from gameday.sandbox.replicas import next_backoff


def test_backoff_doubles_from_half_a_second_to_ten():
    delays = []
    previous = None
    for _ in range(8):
        previous = next_backoff(previous, ran_for_s=1.0)
        delays.append(previous)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_resets_after_thirty_seconds_up():
    assert next_backoff(10.0, ran_for_s=29.9) == 10.0
    assert next_backoff(10.0, ran_for_s=30.0) == 0.5
