"""CTAPHID over UDP with python-fido2's own HID code: INIT, PING, WINK, channels."""

import pytest
from fido2.ctap import CtapError
from fido2.hid import CAPABILITY, CTAPHID

MAX_MESSAGE = 57 + 128 * 59  # 7609 bytes (CTAP 2.1 section 11.2.4)


def test_init_reports_a_yubikey_5(sim):
    dev = sim.device()
    assert dev.version == 2
    assert dev.device_version == (5, 7, 1)
    assert dev.capabilities == CAPABILITY.WINK | CAPABILITY.CBOR
    assert not dev.capabilities & CAPABILITY.NMSG


def test_ping_echoes_the_largest_message(sim):
    dev = sim.device()
    data = bytes(i % 251 for i in range(MAX_MESSAGE))
    assert dev.ping(data) == data
    assert dev.ping(b"") == b""


def test_ping_one_byte_too_long_is_invalid_len(sim):
    dev = sim.device()
    with pytest.raises(CtapError) as err:
        dev.call(CTAPHID.PING, b"\x01" * (MAX_MESSAGE + 1))
    assert err.value.code == CtapError.ERR.INVALID_LENGTH
    # The channel still works afterwards.
    assert dev.ping(b"still here") == b"still here"


def test_wink_and_independent_channels(sim):
    first, second = sim.device(), sim.device()
    assert first._channel_id != second._channel_id
    first.wink()
    assert second.ping(b"two") == b"two"
    assert first.ping(b"one") == b"one"
