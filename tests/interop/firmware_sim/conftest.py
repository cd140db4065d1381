"""Fixtures for the firmware-sim interop suite: the simulator binary (FIRMWARE_SIM_BIN)
as a child process with its own state file, and python-fido2 devices reaching it through a
UDP CtapHidConnection (fido.md section 6.1): one 64-byte report per datagram, no report ID."""

import os
import socket
import subprocess
import tempfile
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_SIZE = 64
ORIGIN = "https://example.com"
RP = {"id": "example.com", "name": "Example"}


class UdpConnection(CtapHidConnection):
    """python-fido2's HID connection seam, carried over UDP to the simulator."""

    def __init__(self, address, timeout=40.0):
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)

    def write_packet(self, data):
        assert len(data) == REPORT_SIZE, len(data)
        self.sock.sendto(data, self.address)

    def read_packet(self):
        while True:
            data, _ = self.sock.recvfrom(1024)
            if len(data) == REPORT_SIZE:
                return data

    def close(self):
        self.sock.close()


class Simulator:
    """A firmware-sim process on a free loopback port."""

    def __init__(self, touch="auto", state=None):
        self.binary = os.environ["FIRMWARE_SIM_BIN"]
        self.dir = tempfile.TemporaryDirectory()
        self.state = state or os.path.join(self.dir.name, "state.json")
        self.touch = touch
        self.log = []
        self.connections = []
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--listen",
                "127.0.0.1:0",
                "--state",
                self.state,
                "--touch",
                self.touch,
                "--verbose",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.address = None
        for line in self.proc.stderr:
            self.log.append(line)
            if "listening on udp:" in line:
                host, port = line.split("listening on udp:")[1].split()[0].rsplit(":", 1)
                self.address = (host, int(port))
                break
        if self.address is None:
            raise RuntimeError("firmware-sim did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc):
        for line in proc.stderr:
            self.log.append(line)

    def device(self):
        """A fresh python-fido2 CtapHidDevice (runs CTAPHID_INIT on its own channel)."""
        descriptor = HidDescriptor(
            path="udp:%s:%d" % self.address,
            vid=0x1050,
            pid=0x0407,
            report_size_in=REPORT_SIZE,
            report_size_out=REPORT_SIZE,
            product_name="firmware-sim",
            serial_number=None,
        )
        connection = UdpConnection(self.address)
        self.connections.append(connection)
        return CtapHidDevice(descriptor, connection)

    def ca_der(self):
        """The attestation CA, exported by `firmware-sim export-ca`, as DER."""
        pem = subprocess.run(
            [self.binary, "export-ca", "--state", self.state],
            check=True,
            capture_output=True,
        ).stdout
        return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)

    def power_cycle(self):
        """Kill the process and start it again on the same state file."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._start()

    def stop(self):
        for connection in self.connections:
            connection.close()
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.dir.cleanup()


@pytest.fixture(scope="module")
def sim():
    """A simulator with touch `auto`, shared by a test module."""
    s = Simulator()
    yield s
    s.stop()


@pytest.fixture
def make_sim():
    """A factory for simulators with other touch policies; all stopped after the test."""
    started = []

    def make(touch="auto"):
        s = Simulator(touch)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
