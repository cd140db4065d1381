"""CTAP2 with python-fido2: GetInfo, Fido2Client registration and authentication checked by
Fido2Server (attestation chain against the simulator CA), resident keys through
GetNextAssertion, excludeList, selection, reset."""

import os

import pytest
from fido2.attestation import AttestationVerifier, UntrustedAttestation
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.cose import EdDSA, ES256
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.utils import sha256
from fido2.webauthn import PublicKeyCredentialParameters, PublicKeyCredentialType

from conftest import ORIGIN, RP

AAGUID = bytes.fromhex("7f6c3a1e2b9d4c589e0a5d3b8f1c2a47")


class SimulatorCa(AttestationVerifier):
    """Trusts exactly the simulator's exported CA."""

    def __init__(self, ca_der):
        super().__init__()
        self.ca_der = ca_der

    def ca_lookup(self, attestation_result, auth_data):
        return self.ca_der


def client(dev):
    return Fido2Client(dev, DefaultClientDataCollector(ORIGIN), UserInteraction())


def server(sim, alg=None):
    s = Fido2Server(RP, attestation="direct", verify_attestation=SimulatorCa(sim.ca_der()))
    if alg is not None:
        s.allowed_algorithms = [
            PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
        ]
    return s


def register(sim, s, user_id, resident="discouraged", exclude=None):
    options, state = s.register_begin(
        {"id": user_id, "name": user_id.decode(), "displayName": "User"},
        credentials=exclude,
        resident_key_requirement=resident,
        user_verification="discouraged",
    )
    response = client(sim.device()).make_credential(options["publicKey"])
    return s.register_complete(state, response)


def test_get_info(sim):
    info = Ctap2(sim.device()).info
    assert info.versions == ["U2F_V2", "FIDO_2_0", "FIDO_2_1"]
    assert info.extensions == ["credProtect", "hmac-secret"]
    assert bytes(info.aaguid) == AAGUID
    assert info.options == {
        "rk": True,
        "up": True,
        "clientPin": False,
        "credMgmt": True,
        "pinUvAuthToken": True,
    }
    assert info.max_msg_size == 1200
    assert info.pin_uv_protocols == [2, 1]
    assert [a["alg"] for a in info.algorithms] == [-7, -8]
    assert info.transports == ["usb"]


@pytest.mark.parametrize("alg", [ES256.ALGORITHM, EdDSA.ALGORITHM])
def test_register_and_authenticate_through_fido2_server(sim, alg):
    s = server(sim, alg)
    auth_data = register(sim, s, b"alice-%d" % -alg)
    credential = auth_data.credential_data
    assert credential.public_key.ALGORITHM == alg
    assert bytes(credential.aaguid) == AAGUID
    assert auth_data.is_user_present() and not auth_data.is_user_verified()

    options, state = s.authenticate_begin([credential], user_verification="discouraged")
    selection = client(sim.device()).get_assertion(options["publicKey"])
    response = selection.get_response(0)
    assert s.authenticate_complete(state, [credential], response) == credential
    assert response.response.authenticator_data.counter > auth_data.counter


def test_attestation_from_another_ca_is_refused(sim, make_sim):
    other = make_sim()
    s = Fido2Server(RP, attestation="direct", verify_attestation=SimulatorCa(other.ca_der()))
    with pytest.raises(UntrustedAttestation):
        register(sim, s, b"mallory")


def test_resident_keys_are_enumerated_with_get_next_assertion(make_sim):
    sim = make_sim()
    s = server(sim)
    credentials = {}
    for name in (b"ann", b"bob", b"cyd"):
        credentials[name] = register(sim, s, name, resident="required").credential_data

    ctap2 = Ctap2(sim.device())
    client_data_hash = sha256(b"discoverable")
    assertions = ctap2.get_assertions(RP["id"], client_data_hash)
    assert assertions[0].number_of_credentials == 3
    users = [a.user["id"] for a in assertions]
    assert users == [b"cyd", b"bob", b"ann"], "newest first"
    counters = [a.auth_data.counter for a in assertions]
    assert counters == sorted(set(counters))
    for assertion in assertions:
        credential = credentials[assertion.user["id"]]
        assertion.verify(client_data_hash, credential.public_key)

    # The same through Fido2Client and Fido2Server, without an allowList.
    options, state = s.authenticate_begin(user_verification="discouraged")
    selection = client(sim.device()).get_assertion(options["publicKey"])
    responses = [selection.get_response(i) for i in range(len(selection.get_assertions()))]
    assert len(responses) == 3
    for response in responses:
        s.authenticate_complete(state, list(credentials.values()), response)


def test_exclude_list_refuses_a_second_registration(sim):
    s = server(sim)
    first = register(sim, s, b"dora").credential_data
    with pytest.raises(ClientError) as err:
        register(sim, s, b"dora", exclude=[first])
    assert err.value.code == ClientError.ERR.DEVICE_INELIGIBLE
    assert err.value.cause.code == CtapError.ERR.CREDENTIAL_EXCLUDED


def test_unknown_credentials_are_no_credentials(sim):
    ctap2 = Ctap2(sim.device())
    with pytest.raises(CtapError) as err:
        ctap2.get_assertion(
            RP["id"], os.urandom(32), [{"type": "public-key", "id": os.urandom(64)}]
        )
    assert err.value.code == CtapError.ERR.NO_CREDENTIALS


def test_selection_and_reset_within_ten_seconds(make_sim):
    sim = make_sim()
    s = server(sim)
    register(sim, s, b"erin", resident="required")
    ctap2 = Ctap2(sim.device())
    ctap2.selection()
    ctap2.reset()
    with pytest.raises(CtapError) as err:
        ctap2.get_assertion(RP["id"], os.urandom(32))
    assert err.value.code == CtapError.ERR.NO_CREDENTIALS
