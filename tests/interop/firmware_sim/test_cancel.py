"""Waiting for a touch: KEEPALIVE UPNEEDED while waiting, CTAPHID_CANCEL ends the wait
with CTAP2_ERR_KEEPALIVE_CANCEL (python-fido2 sends CANCEL when its event is set)."""

import os
import threading
import time

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.hid import STATUS

from conftest import RP


def test_cancel_while_waiting_for_a_touch(make_sim):
    sim = make_sim("delay:60000")
    ctap2 = Ctap2(sim.device())
    statuses = []
    event = threading.Event()
    threading.Timer(0.5, event.set).start()
    started = time.monotonic()
    with pytest.raises(CtapError) as err:
        ctap2.make_credential(
            os.urandom(32),
            RP,
            {"id": b"cancel", "name": "cancel"},
            [{"type": "public-key", "alg": -7}],
            event=event,
            on_keepalive=statuses.append,
        )
    assert err.value.code == CtapError.ERR.KEEPALIVE_CANCEL
    assert statuses == [STATUS.UPNEEDED]
    assert 0.45 < time.monotonic() - started < 5
    # The device is free again.
    assert Ctap2(sim.device()).get_info().versions[-1] == "FIDO_2_1"
    assert any("waiting for touch" in line for line in sim.log)
    assert any("KeepaliveCancel" in line for line in sim.log)


def test_a_delayed_touch_completes(make_sim):
    sim = make_sim("delay:300")
    ctap2 = Ctap2(sim.device())
    statuses = []
    started = time.monotonic()
    ctap2.selection(on_keepalive=statuses.append)
    assert time.monotonic() - started >= 0.25
    assert statuses == [STATUS.UPNEEDED]
