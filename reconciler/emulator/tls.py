"""The emulator's own certificate authority.

ARM, the token endpoint and azure-identity insist on HTTPS, and tests must prove that a client which does
not trust the emulator is refused. A throwaway CA per run gives both: clients trust exactly the PEM written
into the run's working directory, and nothing on the machine trusts it by accident.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("127.0.0.1", "::1", "localhost")
CA_FILE = "ca.pem"


@dataclass(frozen=True)
class TlsMaterial:
    """A CA and a server certificate for the loopback names, kept in memory so a session can reuse them."""

    ca_pem: bytes
    cert_chain_pem: bytes
    key_pem: bytes

    @classmethod
    def generate(cls) -> TlsMaterial:
        ca = trustme.CA(organization_name="reconciler emulator")
        cert = ca.issue_cert(*SERVER_NAMES)
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        return cls(ca.cert_pem.bytes(), chain, cert.private_key_pem.bytes())

    def write_ca(self, workdir: Path) -> Path:
        path = workdir / CA_FILE
        path.write_bytes(self.ca_pem)
        return path

    def server_context(self, workdir: Path) -> ssl.SSLContext:
        """An SSLContext for the HTTPS listener; the key file stays private to the run's working directory."""
        chain = workdir / "server-chain.pem"
        key = workdir / "server-key.pem"
        chain.write_bytes(self.cert_chain_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key)
        return context
