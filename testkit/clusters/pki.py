"""A throw-away certificate authority for the controlplane provider, made with the openssl CLI.

The project's venv has no `cryptography`; the `openssl` command is on every Debian machine
(package `openssl`).  Keys are RSA 2048, certificates are valid for two days: they live in
the session's temporary directory and die with it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PKIError(RuntimeError):
    """openssl is missing or refused to make a key or certificate."""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise PKIError("the controlplane provider needs the openssl CLI (apt-get install openssl)")
    proc = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise PKIError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


class TestCA:
    """A certificate authority in `directory` that signs serving and client certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "pulling-agent-e2e-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
            "-keyout", str(self.ca.key), "-out", str(self.ca.cert),
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
        client: bool = False,
    ) -> KeyPair:
        """Sign a certificate: a serving one when names/IPs are given, a client one if `client`."""
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        csr = self.directory / f"{name}.csr"
        subject = "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(pair.key), "-out", str(csr), "-subj", subject,
            cwd=self.directory,
        )  # fmt: skip
        usages = []
        if server_names or server_ips:
            usages.append("serverAuth")
        if client:
            usages.append("clientAuth")
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={','.join(usages)}",
        ]
        alt_names = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        if alt_names:
            extensions.append(f"subjectAltName={','.join(alt_names)}")
        ext_file = self.directory / f"{name}.ext"
        ext_file.write_text("\n".join(extensions) + "\n")
        _openssl(
            "x509", "-req", "-sha256", "-days", "2", "-in", str(csr),
            "-CA", str(self.ca.cert), "-CAkey", str(self.ca.key), "-CAcreateserial",
            "-extfile", str(ext_file), "-out", str(pair.cert),
            cwd=self.directory,
        )  # fmt: skip
        return pair

    def service_account_key(self, name: str = "service-account") -> Path:
        """An RSA private key for signing ServiceAccount tokens (its public half is derived)."""
        key = self.directory / f"{name}.key"
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", str(key), cwd=self.directory)  # fmt: skip
        return key
