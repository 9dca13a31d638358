"""`kavach.cli.limits`: what is over the server's limits, said with names and sizes only."""

from __future__ import annotations

from kavach.cli.limits import Limits, body_size, problems, server_limits

from .fake_api import FakeApi

SMALL = Limits(value_bytes=4, secrets=2, message_chars=5, body_bytes=60)


def test_values_count_and_message_are_named_never_shown() -> None:
    found = problems(SMALL, {"A": "hunter2", "B": "ééé", "C": "ok"}, "x" * 6)
    assert found == [
        "the message is 6 characters, over the limit of 5",
        "values of A (7 bytes), B (6 bytes) are over the server's limit of 4 bytes a value",
        "the version would hold 3 secrets, over the server's limit of 2",
    ]
    assert not any("hunter2" in line for line in found)
    assert problems(SMALL, message="") == ["the message is empty"]
    assert problems(SMALL, message="a\0b") == ["the message holds a NUL character"]
    assert problems(SMALL, {"A": "1234", "B": ""}, "12345") == []


def test_the_request_size_is_the_one_sent() -> None:
    body = {"message": "m", "set": {"A": "é", "B": "1"}}
    assert body_size(body) == len('{"message":"m","set":{"A":"é","B":"1"}}'.encode())
    values = {f"N{i}": "1" for i in range(6)}
    big = {"message": "m", "set": values}
    assert problems(Limits(secrets=10), values, "m", body=big) == []
    assert problems(Limits(secrets=10, body_bytes=60), values, "m", body=big) == [
        f"the request would be {body_size(big)} bytes, over the server's limit of 60; "
        "commit the change in smaller parts"
    ]


def test_a_server_that_reports_no_limits_is_held_to_the_defaults() -> None:
    from kavach.cli.client import ApiClient

    client = ApiClient("http://kavach.test", transport=FakeApi().transport)
    assert server_limits(client) == Limits()
