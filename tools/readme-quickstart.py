#!/usr/bin/env python3
"""Runs the README's quickstart verbatim, as a new user would, and checks what it prints.

The README's `sh` blocks are taken from the file itself (so the check follows the text):
the service and firmware-sim run as the "other terminals" in the background, and the second
terminal's blocks run in bash with a fresh HOME (no ~/.aws, no data dir) and no AWS_* or
TOKENGATE_* variable from outside. Two steps need a person and are skipped: typing two TOTP
codes into `tokengate mfa enroll`, and the code prompt of the TOTP profile (both are covered
by tests/e2e and tests/interop). The security-key steps run under `script` so that
`tokengate login` has a terminal for its touch prompt.

Needs: the release binaries' sources (it runs `cargo run --release` as the README says), the
AWS CLI on PATH, port 8787 and udp 8111 free. Usage, from the checkout:

    python3 tools/readme-quickstart.py
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blocks():
    with open(os.path.join(ROOT_DIR, "README.md")) as f:
        return re.findall(r"```sh\n(.*?)```", f.read(), re.S)


def find(bs, start):
    """The block that starts with `start` (the README's order may change; its text not)."""
    found = [b for b in bs if b.startswith(start)]
    assert len(found) == 1, f"README block starting {start!r}: {len(found)} found"
    return found[0]


def main():
    bs = blocks()
    home = tempfile.mkdtemp(prefix="tokengate-quickstart-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "TOKENGATE_"))}
    env.update(HOME=home,
               RUSTUP_HOME=os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup")),
               CARGO_HOME=os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")))
    made = [os.path.join(ROOT_DIR, n) for n in ("alice.json", "sim-ca.pem")]
    for path in made:
        assert not os.path.exists(path), f"{path} exists: the quickstart would append to it"
    procs = []

    def background(cmd, log):
        p = subprocess.Popen(["bash", "-c", cmd], cwd=ROOT_DIR, env=env,
                             stdout=open(os.path.join(home, log), "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    def wait_for(log, text, seconds=600):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with open(os.path.join(home, log)) as f:
                if text in f.read():
                    return
            time.sleep(0.2)
        raise AssertionError(f"{log}: no {text!r} within {seconds} s")

    def terminal(script, tty=False):
        path = os.path.join(home, "step.sh")
        with open(path, "w") as f:
            f.write(script)
        cmd = ["script", "-qec", f"bash -x {path}", "/dev/null"] if tty else ["bash", "-x", path]
        out = subprocess.run(cmd, cwd=ROOT_DIR, env=env, capture_output=True, text=True,
                             timeout=600)
        print(out.stdout, out.stderr, sep="\n")
        return out.stdout

    def stop(p):
        os.killpg(p.pid, signal.SIGINT)
        p.wait(30)

    try:
        service = background(find(bs, "TOKENGATE_MFA_REQUIRED=false cargo run"), "svc1.log")
        wait_for("svc1.log", "tokengate is serving")
        second = find(bs, "export PATH=$PWD/target/release:$PATH")
        profiles = "\n".join(
            line for line in find(bs, "mkdir -p ~/.aws").splitlines()
            if not line.startswith("aws sts get-caller-identity --profile alice-mfa"))
        out = terminal(second + profiles + "\n")
        assert "arn:aws:iam::000000000000:root" in out and "user/alice" in out, out

        sim = background(find(bs, "cargo run --release --bin firmware-sim"), "sim.log")
        wait_for("sim.log", "listening on udp:127.0.0.1:8111")
        terminal(find(bs, "target/release/firmware-sim export-ca"))
        stop(service)
        service = background(find(bs, "TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS="), "svc2.log")
        wait_for("svc2.log", "tokengate is serving")
        # The second terminal's shell state from before: its exports and the unset.
        state = "\n".join(line for line in second.splitlines()
                          if line.startswith(("export", "ROOT=")))
        out = terminal(state + "\nunset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL\n"
                       + find(bs, "export TOKENGATE_DEVICE=") + find(bs, "AWS_ACCESS_KEY_ID=$("),
                       tty=True)
        assert "u2f/user/alice/yubikey-" in out, out
        assert '"Arn": "arn:aws:iam::000000000000:user/alice"' in out, out
        assert '"Arn": "arn:aws:sts::000000000000:assumed-role/key-admin/alice"' in out, out
        print("README quickstart: OK")
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        for path in made:
            if os.path.exists(path):
                os.remove(path)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
