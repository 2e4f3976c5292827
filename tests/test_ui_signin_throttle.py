"""Sign-in rate limit: 10 failed sign-ins per client address within a minute, then 429 with Retry-After."""

from __future__ import annotations

from tests.fixtures.ui import csrf_of


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _try(client, key: str):  # noqa: ANN001, ANN202
    form = client.get("/ui/login")
    return client.post("/ui/login", data={"key": key, "csrf_token": csrf_of(form.text)}, follow_redirects=False)


def test_ten_failed_sign_ins_from_one_address_answer_429_until_the_minute_has_passed(ui_env_sqlite):
    from fastapi.testclient import TestClient

    from kwhub.hub.ui.throttle import SignInThrottle

    env = ui_env_sqlite
    clock = Clock()
    env.api.app.state.ui_signin_throttle = SignInThrottle(clock=clock)
    guesser = TestClient(env.api.app, client=("203.0.113.7", 40000))
    # a form without its CSRF token is refused (403) but is not a key guess: not counted
    assert guesser.post("/ui/login", data={"key": "kwh_x"}).status_code == 403
    for i in range(10):  # one failure a second: t = 0 .. 9 s
        assert _try(guesser, f"kwh_000000000000_guess{i}").status_code == 401
        clock.t += 1
    # t = 10 s: the first of the ten failures (t = 0) leaves the window at t = 60 s -> 50 s to wait
    blocked = _try(guesser, env.api.keys["operator"])  # even a valid key: nothing is checked
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "50"
    assert "Too many failed sign-ins" in blocked.text and "Wait 50 seconds" in blocked.text
    # another address is not affected
    other = TestClient(env.api.app, client=("198.51.100.9", 40000))
    assert _try(other, env.api.keys["operator"]).status_code == 303
    clock.t += 49  # t = 59 s: 1 s left
    assert _try(guesser, env.api.keys["operator"]).headers["retry-after"] == "1"
    clock.t += 1  # t = 60 s: the t = 0 failure has left the window; nine remain, one more try is allowed
    assert _try(guesser, env.api.keys["operator"]).status_code == 303
    assert _try(guesser, "kwh_000000000000_again").status_code == 401  # ten again within the window
    assert _try(guesser, env.api.keys["operator"]).status_code == 429


def test_the_throttle_forgets_old_failures_and_bounds_the_addresses_it_tracks():
    from kwhub.hub.ui.throttle import SignInThrottle

    clock = Clock()
    th = SignInThrottle(limit=3, window_s=60, max_clients=2, clock=clock)
    for _ in range(3):
        th.failed("a")
    assert th.retry_after("a") == 60 and th.retry_after("b") is None
    clock.t += 30
    th.failed("b")
    th.failed("c")  # a third address: "a" (the oldest last failure) is dropped
    assert th.retry_after("a") is None and set(th._failures) == {"b", "c"}
    clock.t += 60
    assert th.retry_after("b") is None and "b" not in th._failures  # its failure left the window
