from rdsiam_emulator.auth.throttle import Throttle, ThrottleLimits


class FakeMonotonic:
    """A monotonic source the test moves by hand (the real one cannot be steered)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_distinct_tokens_over_limit_are_throttled_within_one_second():
    mono = FakeMonotonic()
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=3,
                                       distinct_identities_per_second=100), monotonic=mono)
    assert [throttle.admit(f"tok{i}", "alice") for i in range(3)] == [None, None, None]
    why = throttle.admit("tok3", "alice")
    assert why is not None and "different tokens" in why


def test_reusing_a_token_is_never_throttled():
    mono = FakeMonotonic()
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=1,
                                       distinct_identities_per_second=1), monotonic=mono)
    assert throttle.admit("same", "alice") is None
    for _ in range(50):
        assert throttle.admit("same", "alice") is None


def test_distinct_identities_limit():
    mono = FakeMonotonic()
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=100,
                                       distinct_identities_per_second=2), monotonic=mono)
    assert throttle.admit("t1", "alice") is None
    assert throttle.admit("t2", "bob") is None
    assert throttle.admit("t3", "alice") is None  # a known identity within the window is fine
    why = throttle.admit("t4", "carol")
    assert why is not None and "different IAM identities" in why


def test_window_slides_after_one_second():
    mono = FakeMonotonic()
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=2,
                                       distinct_identities_per_second=10), monotonic=mono)
    assert throttle.admit("a", "x") is None
    assert throttle.admit("b", "x") is None
    assert throttle.admit("c", "x") is not None
    mono.t += 1.01
    assert throttle.admit("c", "x") is None


def test_rds_default_limits():
    limits = ThrottleLimits()
    assert (limits.distinct_tokens_per_second, limits.distinct_identities_per_second) == (200, 20)


def test_reset_forgets_the_window():
    mono = FakeMonotonic()
    throttle = Throttle(ThrottleLimits(distinct_tokens_per_second=100,
                                       distinct_identities_per_second=1), monotonic=mono)
    assert throttle.admit("t1", "alice") is None
    assert throttle.admit("t2", "bob") is not None
    throttle.reset()
    assert throttle.admit("t2", "bob") is None  # same instant: only the reset emptied the window
