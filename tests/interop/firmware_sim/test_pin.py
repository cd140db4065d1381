"""ClientPIN with python-fido2 (protocols 2 and 1): set, change, tokens, retries and
blocking; PIN-verified registration; the prf/hmac-secret extension with a PIN; credential
management."""

import os

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.server import Fido2Server
from fido2.utils import sha256, websafe_decode

from conftest import ORIGIN, RP

PIN = "4321"


class Pin(UserInteraction):
    def __init__(self, pin):
        self.pin = pin

    def request_pin(self, permissions, rp_id):
        return self.pin


def client(dev, pin=PIN, extensions=None):
    kwargs = {} if extensions is None else {"extensions": extensions}
    return Fido2Client(dev, DefaultClientDataCollector(ORIGIN), Pin(pin), **kwargs)


@pytest.mark.parametrize("protocol", [PinProtocolV2, PinProtocolV1])
def test_set_change_and_token(make_sim, protocol):
    sim = make_sim()
    ctap2 = Ctap2(sim.device())
    pin = ClientPin(ctap2, protocol())
    assert pin.get_pin_retries() == (8, False)
    pin.set_pin(PIN)
    assert Ctap2(sim.device()).info.options["clientPin"] is True
    with pytest.raises(CtapError) as err:
        pin.set_pin("9999")
    assert err.value.code == CtapError.ERR.PIN_AUTH_INVALID

    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    assert len(token) == 32
    legacy = pin.get_pin_token(PIN)  # subcommand 5
    assert len(legacy) == 32

    with pytest.raises(CtapError) as err:
        pin.get_pin_token("0000", ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    assert err.value.code == CtapError.ERR.PIN_INVALID
    assert pin.get_pin_retries() == (7, False)

    pin.change_pin(PIN, "5555")
    assert pin.get_pin_retries() == (8, False)
    with pytest.raises(CtapError) as err:
        pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    assert err.value.code == CtapError.ERR.PIN_INVALID
    pin.get_pin_token("5555", ClientPin.PERMISSION.GET_ASSERTION, RP["id"])


def test_three_wrong_pins_block_until_power_cycle(make_sim):
    sim = make_sim()
    pin = ClientPin(Ctap2(sim.device()))
    pin.set_pin(PIN)
    codes = []
    for _ in range(3):
        with pytest.raises(CtapError) as err:
            pin.get_pin_token("0000", ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
        codes.append(err.value.code)
    assert codes == [
        CtapError.ERR.PIN_INVALID,
        CtapError.ERR.PIN_INVALID,
        CtapError.ERR.PIN_AUTH_BLOCKED,
    ]
    assert pin.get_pin_retries() == (5, True)
    with pytest.raises(CtapError) as err:
        pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    assert err.value.code == CtapError.ERR.PIN_AUTH_BLOCKED

    sim.power_cycle()
    pin = ClientPin(Ctap2(sim.device()))
    assert pin.get_pin_retries() == (5, False)
    pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    assert pin.get_pin_retries() == (8, False)


def test_registration_with_pin_is_user_verified(make_sim):
    sim = make_sim()
    ClientPin(Ctap2(sim.device())).set_pin(PIN)
    server = Fido2Server(RP)
    options, state = server.register_begin(
        {"id": b"pin-user", "name": "pin-user"}, user_verification="required"
    )
    response = client(sim.device()).make_credential(options["publicKey"])
    auth_data = server.register_complete(state, response)
    assert auth_data.is_user_verified()

    credential = auth_data.credential_data
    options, state = server.authenticate_begin([credential], user_verification="required")
    selection = client(sim.device()).get_assertion(options["publicKey"])
    server.authenticate_complete(state, [credential], selection.get_response(0))

    # A wrong PIN from the client is refused by the authenticator.
    options, _ = server.authenticate_begin([credential], user_verification="required")
    with pytest.raises(ClientError) as err:
        client(sim.device(), pin="0000").get_assertion(options["publicKey"])
    assert err.value.cause.code == CtapError.ERR.PIN_INVALID
    assert ClientPin(Ctap2(sim.device())).get_pin_retries()[0] == 7


def test_prf_over_hmac_secret_with_a_pin(make_sim):
    """python-fido2 fetches the key-agreement key for hmac-secret before it gets the PIN
    token: the authenticator must keep that key across both commands."""
    sim = make_sim()
    ClientPin(Ctap2(sim.device())).set_pin(PIN)
    extensions = [HmacSecretExtension(allow_hmac_secret=True)]
    server = Fido2Server(RP)
    options, state = server.register_begin(
        {"id": b"prf-user", "name": "prf-user"},
        user_verification="required",
        extensions={"prf": {}},
    )
    response = client(sim.device(), extensions=extensions).make_credential(options["publicKey"])
    assert response.client_extension_results["prf"]["enabled"] is True
    credential = server.register_complete(state, response).credential_data

    salt = os.urandom(32)
    outputs = []
    for _ in range(2):
        options, state = server.authenticate_begin(
            [credential],
            user_verification="required",
            extensions={"prf": {"eval": {"first": salt}}},
        )
        selection = client(sim.device(), extensions=extensions).get_assertion(
            options["publicKey"]
        )
        result = selection.get_response(0)
        server.authenticate_complete(state, [credential], result)
        first = result.client_extension_results["prf"]["results"]["first"]
        outputs.append(websafe_decode(first) if isinstance(first, str) else first)
    assert len(outputs[0]) == 32
    assert outputs[0] == outputs[1], "same credential and salt give the same secret"


def test_credential_management(make_sim):
    sim = make_sim()
    ctap2 = Ctap2(sim.device())
    ClientPin(ctap2).set_pin(PIN)
    for name in (b"one", b"two"):
        rk = Fido2Server(RP)
        options, state = rk.register_begin(
            {"id": name, "name": name.decode()},
            resident_key_requirement="required",
            user_verification="required",
        )
        rk.register_complete(state, client(sim.device()).make_credential(options["publicKey"]))

    pin = ClientPin(ctap2)
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    credman = CredentialManagement(ctap2, pin.protocol, token)
    metadata = credman.get_metadata()
    assert metadata[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 2
    rps = credman.enumerate_rps()
    assert [rp[CredentialManagement.RESULT.RP]["id"] for rp in rps] == [RP["id"]]
    creds = credman.enumerate_creds(sha256(RP["id"].encode()))
    users = sorted(c[CredentialManagement.RESULT.USER]["id"] for c in creds)
    assert users == [b"one", b"two"]
    credman.delete_cred(creds[0][CredentialManagement.RESULT.CREDENTIAL_ID])
    assert credman.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
