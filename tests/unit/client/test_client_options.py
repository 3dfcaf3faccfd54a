"""The SDK's options object and the session attributes the Client facade passes through."""

from __future__ import annotations

import pytest

from tinyim.client import Client, ClientOptions


def test_the_tuning_reaches_the_session() -> None:
    options = ClientOptions(heartbeat_interval=3, request_timeout=7, backoff_initial=0.2, backoff_max=1.5)
    client = Client("http://server/", "alice", "pw", "Web", options=options)
    assert client.options is options
    assert client.session.backoff == (0.2, 1.5)
    assert (client.base_url, client.username, client.device_id) == ("http://server", "alice", "Web")


def test_positional_arguments_and_defaults_still_work() -> None:
    client = Client("http://server", "alice", "pw")
    assert client.device_id == "PC"
    assert client.options == ClientOptions()


def test_session_attributes_are_read_and_written_through_the_client() -> None:
    client = Client("http://server", "alice", "pw", "PC")
    client.ws_url = "ws://gateway-2/ws"  # tests pin a gateway this way
    client.user_id = 42
    assert (client.session.ws_url, client.session.user_id) == ("ws://gateway-2/ws", 42)
    client.session.kick_reason = "replaced"
    client.session.kicked.set()
    assert client.kick_reason == "replaced" and client.kicked.is_set()
    assert client.connection_state == "kicked"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a positive"),
        ({"request_timeout": -1}, "request_timeout must be a positive"),
        ({"backoff_initial": 3.0, "backoff_max": 1.0}, "backoff_initial must not exceed backoff_max"),
        ({"sync_limit": 0}, "sync_limit must be at least 1"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(bad: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientOptions(**bad)  # type: ignore[arg-type]
