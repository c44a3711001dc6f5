"""Option validation: every mistake is a ConfigError (a ValueError) naming the option.

Configuration is checked before any socket exists, so these tests open none.
"""

from __future__ import annotations

import pytest

from netgear import ConfigError, NetGear, NetGearError
from netgear.options import OPTION_DOCS, REFUSED_OPTIONS, Options, build_settings, parse_options

pytestmark = pytest.mark.timeout(30)


def settings(receive_mode=False, port=None, pattern=None, address=None, protocol="tcp", logging=False, **options):
    return build_settings(address=address, port=port, protocol=protocol, pattern=pattern,
                          receive_mode=receive_mode, logging=logging, options=options)


def config_error(option, *args, **kwargs) -> ConfigError:
    """NetGear(*args, **kwargs) must raise a ConfigError naming ``option``; return it."""
    with pytest.raises(ConfigError) as err:
        NetGear(*args, **kwargs)
    error = err.value
    assert isinstance(error, ValueError) and isinstance(error, NetGearError)
    assert error.option == option
    assert str(error).startswith(f"{option}: ")
    return error


# ------------------------------------------------------------------------ unknown names


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("multiserver_mod", "multiserver_mode"),
        ("bidirectonal_mode", "bidirectional_mode"),
        ("request_timout", "request_timeout"),
        ("liveness_timout", "liveness_timeout"),
        ("filters", "filter"),
        ("secure_mod", "secure_mode"),
    ],
)
def test_unknown_option_suggests_the_closest_name(typo, meant):
    error = config_error(typo, receive_mode=True, port=[5566], **{typo: True})
    assert f"did you mean {meant!r}?" in str(error)
    assert "unknown option" in str(error)


def test_unknown_option_without_a_close_name_lists_the_known_ones():
    error = config_error("colour", port=5566, colour="red")
    assert "did you mean" not in str(error)
    assert "multiserver_mode" in str(error) and "request_timeout" in str(error)


# ------------------------------------------------------------------- refused vidgear names


@pytest.mark.parametrize("name", sorted(REFUSED_OPTIONS))
def test_refused_vidgear_options_say_why(name):
    error = config_error(name, port=5566, **{name: True})
    assert str(error) == f"{name}: not supported: {REFUSED_OPTIONS[name]}"


def test_refused_reasons_are_explanations():
    assert "secure_mode" not in REFUSED_OPTIONS  # implemented (see tests/security)
    assert "netgear keys generate" in REFUSED_OPTIONS["overwrite_cert"]
    assert "jpeg_compression" in REFUSED_OPTIONS["compression_format"]
    assert "ssh -L" in REFUSED_OPTIONS["ssh_tunnel_mode"]


# ---------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    "name, value",
    [
        ("multiserver_mode", "yes"),
        ("multiserver_mode", 1),
        ("bidirectional_mode", None),
        ("request_timeout", "2"),
        ("request_timeout", 0),
        ("request_timeout", -1.0),
        ("request_timeout", float("inf")),
        ("request_timeout", float("nan")),
        ("request_timeout", True),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("max_retries", -1),
        ("max_retries", 101),
        ("heartbeat_interval", None),
        ("liveness_timeout", "1.5"),
        ("startup_grace", -1),
        ("queue_size", 0),
        ("queue_size", "8"),
        ("max_message_bytes", 100),
        ("max_frame_bytes", 2.0),
        ("send_hwm", 0),
        ("send_buffer", -1),
        ("send_buffer", 1.5),
        ("max_inflight", 0),
        ("max_inflight", 65),
        ("max_inflight_bytes", 0),
        ("max_inflight_bytes", 1.5),
        ("topic", ["a"]),
        ("topic", ""),
        ("topic", "a\x00b"),
        ("topic", "x" * 257),
        ("server_id", 1.5),
        ("server_id", True),
    ],
)
def test_wrong_types_and_ranges_name_the_option(name, value):
    error = config_error(name, port=5566, **{name: value})
    assert repr(value)[:40] in str(error) or "characters" in str(error)


@pytest.mark.parametrize("value", [[], 1.5, [None], [True], {"a": 1}, ""])
def test_bad_filter_values(value):
    config_error("filter", receive_mode=True, port=[5566], multiserver_mode=True, filter=value)


def test_bad_delivery():
    error = config_error("delivery", receive_mode=True, port=5566, delivery="all")
    assert "'fifo' or 'latest'" in str(error)


def test_liveness_timeout_must_exceed_heartbeat_interval():
    error = config_error("liveness_timeout", receive_mode=True, port=5566, heartbeat_interval=1.0,
                         liveness_timeout=1.0)
    assert "heartbeat_interval" in str(error)


@pytest.mark.parametrize(
    "option, kwargs",
    [
        ("receive_mode", {"receive_mode": "yes"}),
        ("logging", {"logging": 1}),
        ("protocol", {"protocol": "udp"}),
        ("address", {"address": 5}),
        ("address", {"address": "   "}),
        ("pattern", {"pattern": 3}),
        ("pattern", {"pattern": True}),
        ("pattern", {"pattern": "1"}),
        ("port", {"port": 70000}),
        ("port", {"port": -1}),
        ("port", {"port": True}),
        ("port", {"port": "http"}),
        ("port", {"port": 0}),  # only a hub may ask for a kernel-chosen port
        ("port", {"port": [5566]}),  # a server has one port
        ("port", {"port": [5566, 5567], "receive_mode": True}),  # single pair hub: one port
    ],
)
def test_bad_constructor_arguments(option, kwargs):
    config_error(option, **kwargs)


# -------------------------------------------------------------------------- combinations


def test_pattern_0_refuses_multiserver_mode():
    error = config_error("pattern", receive_mode=True, port=[5566, 5567], pattern=0, multiserver_mode=True)
    assert "multiserver_mode" in str(error) and "PAIR" in str(error)


@pytest.mark.parametrize("port", [5566, "5566", None])
def test_multiserver_hub_port_must_be_a_list(port):
    error = config_error("port", receive_mode=True, port=port, multiserver_mode=True)
    assert "list of ports" in str(error)


def test_multiserver_hub_ports_must_be_distinct():
    config_error("port", receive_mode=True, port=[5566, "5566"], multiserver_mode=True)


@pytest.mark.parametrize(
    "option, kwargs",
    [
        ("bidirectional_mode", {"pattern": 2, "bidirectional_mode": True}),
        ("bidirectional_mode", {"pattern": 0, "bidirectional_mode": True}),
        ("subscriber_timeout", {"pattern": 1, "subscriber_timeout": 5.0}),
        ("topic", {"receive_mode": True, "topic": "front"}),
        ("server_id", {"receive_mode": True, "server_id": "cam"}),
        ("filter", {"filter": 5566}),
    ],
)
def test_options_that_do_not_apply_to_the_mode(option, kwargs):
    kwargs.setdefault("port", 5566)
    config_error(option, **kwargs)


# ----------------------------------------------------------------------- accepted forms


def test_options_as_an_unpacked_dict():
    options = {"multiserver_mode": True, "filter": 5567}
    s = settings(receive_mode=True, port=[5566, 5567], **options)
    assert s.options.multiserver_mode is True
    assert s.options.filter == ("5567",)
    assert s.pattern == 1  # vidgear's default in multiserver mode
    # and errors come out the same way through NetGear(**dict)
    config_error("filter", receive_mode=True, port=[5566], **{"multiserver_mode": True, "filter": []})


def test_port_as_str_and_tuple():
    s = settings(port="5566")
    assert [e.port for e in s.endpoints] == [5566] and type(s.endpoints[0].port) is int
    s = settings(receive_mode=True, port=(5566, "5567"), multiserver_mode=True)
    assert [e.port for e in s.endpoints] == [5566, 5567]
    assert all(type(e.port) is int for e in s.endpoints)
    assert [e.url() for e in s.endpoints] == ["tcp://*:5566", "tcp://*:5567"]


def test_filter_forms_are_normalised_to_strings():
    assert parse_options({"filter": 5566}).filter == ("5566",)
    assert parse_options({"filter": "5566"}).filter == ("5566",)
    assert parse_options({"filter": ["back", 5567, "front", "5567"]}).filter == ("5567", "back", "front")
    assert parse_options({"filter": None}).filter is None


def test_defaults():
    s = settings(port=5566)
    assert (s.pattern, s.receive_mode, s.endpoints[0].url()) == (0, False, "tcp://127.0.0.1:5566")
    assert s.options == Options()
    assert settings(port=5566, pattern=2).delivery == "latest"
    assert settings(port=5566, pattern=1).delivery == "fifo"
    assert settings(port=5566, pattern=0).delivery == "fifo"
    assert settings(port=5566, pattern=2, delivery="fifo").delivery == "fifo"
    assert settings(port=None).endpoints[0].port == 5555
    assert settings(receive_mode=True, port=0).endpoints[0].port == 0


def test_every_option_is_documented():
    assert set(OPTION_DOCS) == {f for f in Options.__dataclass_fields__}
    assert not set(OPTION_DOCS) & set(REFUSED_OPTIONS)


def test_connect_to_hub_needs_no_port_of_its_own():
    urls = ["tcp://cam1:5555", "tcp://cam2:5555"]
    for port in (None, []):
        s = settings(receive_mode=True, port=port, pattern=2, multiserver_mode=True, connect_to=urls)
        assert s.endpoints == () and s.options.connect_to == tuple(urls)
    s = settings(receive_mode=True, port=None, pattern=2, connect_to=urls[0])  # single pair: no 5555 bound
    assert s.endpoints == () and s.options.connect_to == (urls[0],)
    s = settings(receive_mode=True, port=[5566], pattern=2, multiserver_mode=True, connect_to=urls)
    assert [e.port for e in s.endpoints] == [5566]  # and, when given, its own ports as well
    config_error("port", receive_mode=True, pattern=2, multiserver_mode=True)  # no connect_to: a list is needed
    config_error("connect_to", receive_mode=True, port=[5566], pattern=1, multiserver_mode=True, connect_to=urls)
