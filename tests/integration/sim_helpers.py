"""Helpers for the sim integration tests: Docker probe, image, labelled cleanup, certs."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab.engine.images import build_images

LAB_LABEL = "io.gitlab-testlab.lab"


def docker(*args: str, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def skip_or_fail(reason: str) -> None:
    """Skip locally; in CI (CI=true) a missing prerequisite is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI is missing a prerequisite: {reason}")
    pytest.skip(reason)


def require_docker() -> None:
    try:
        ok = docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        skip_or_fail("no reachable Docker Engine")


def sim_image() -> str:
    require_docker()
    return build_images()


def lab_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sweep(name: str) -> None:
    """Remove every container, network and volume labelled with this lab name."""
    flt = f"label={LAB_LABEL}={name}"
    ids = docker("ps", "-aq", "--filter", flt, check=False).stdout.split()
    if ids:
        docker("rm", "-fv", *ids, check=False)
    vols = docker("volume", "ls", "-q", "--filter", flt, check=False).stdout.split()
    if vols:
        docker("volume", "rm", "-f", *vols, check=False)
    nets = docker("network", "ls", "-q", "--filter", flt, check=False).stdout.split()
    if nets:
        docker("network", "rm", *nets, check=False)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def make_ca_and_cert(hostnames: list[str]) -> tuple[bytes, bytes, bytes]:
    """(ca_pem, cert_pem, key_pem) for a server with ``hostnames`` (and 127.0.0.1) as SANs."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
