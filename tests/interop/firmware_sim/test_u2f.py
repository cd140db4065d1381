"""U2F (CTAP1) over CTAPHID_MSG with python-fido2's Ctap1; signatures and the attestation
certificate checked with `cryptography`."""

import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap1 import APDU, ApduError, Ctap1

APP = bytes.fromhex("f0e6a6a97042a4f1f1c87f5f7d44315b2d852c2df5c7991cc66241bf7072d1c4")


def test_version(sim):
    assert Ctap1(sim.device()).get_version() == "U2F_V2"


def test_register_and_authenticate_with_checked_signatures(sim):
    ctap1 = Ctap1(sim.device())
    challenge = os.urandom(32)
    registration = ctap1.register(challenge, APP)
    registration.verify(APP, challenge)  # python-fido2's own check

    # The same checks by hand with `cryptography`.
    cert = x509.load_der_x509_certificate(registration.certificate)
    signed = b"\x00" + APP + challenge + registration.key_handle + registration.public_key
    cert.public_key().verify(registration.signature, signed, ec.ECDSA(hashes.SHA256()))
    ca = x509.load_der_x509_certificate(sim.ca_der())
    cert.verify_directly_issued_by(ca)
    assert len(registration.key_handle) <= 255

    user_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), registration.public_key
    )
    counters = []
    for _ in range(3):
        challenge = os.urandom(32)
        signature = ctap1.authenticate(challenge, APP, registration.key_handle)
        signature.verify(APP, challenge, registration.public_key)
        assert signature.user_presence & 1
        signed = APP + bytes([signature.user_presence]) + signature.counter.to_bytes(4, "big")
        user_key.verify(signature.signature, signed + challenge, ec.ECDSA(hashes.SHA256()))
        counters.append(signature.counter)
    assert counters[1] == counters[0] + 1 and counters[2] == counters[1] + 1

    with pytest.raises(ApduError) as err:
        ctap1.authenticate(os.urandom(32), APP, registration.key_handle, check_only=True)
    assert err.value.code == APDU.USE_NOT_SATISFIED  # 0x6985: "known key handle"

    with pytest.raises(ApduError) as err:
        ctap1.authenticate(os.urandom(32), APP, os.urandom(64))
    assert err.value.code == APDU.WRONG_DATA  # 0x6A80
    with pytest.raises(ApduError) as err:
        ctap1.authenticate(os.urandom(32), os.urandom(32), registration.key_handle)
    assert err.value.code == APDU.WRONG_DATA


def test_conditions_not_satisfied_until_touched(make_sim):
    sim = make_sim("delay:400")
    ctap1 = Ctap1(sim.device())
    started = time.monotonic()
    refusals = 0
    while True:
        try:
            registration = ctap1.register(os.urandom(32), APP)
            break
        except ApduError as err:
            assert err.code == APDU.USE_NOT_SATISFIED
            refusals += 1
            time.sleep(0.05)
        assert time.monotonic() - started < 5
    assert refusals >= 3
    assert time.monotonic() - started >= 0.35
    # The touch was consumed: the next command needs a new one.
    with pytest.raises(ApduError) as err:
        ctap1.authenticate(os.urandom(32), APP, registration.key_handle)
    assert err.value.code == APDU.USE_NOT_SATISFIED
