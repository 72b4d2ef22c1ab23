"""`lambda-sae:sshKey`: the key pair the fleet logs in with, checked to be two halves of one key before anything
launches (lambda_provider/fleet/config.py parses the rest of the stack config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from lambda_provider.fleet.config_reader import Reader


@dataclass(frozen=True)
class SshKeyConfig:
    name: str | None = None
    public_key_path: str | None = None
    private_key_path: str | None = None

    @property
    def generate(self) -> bool:
        return self.public_key_path is None


def parse_ssh_key(r: Reader, raw: Any) -> SshKeyConfig:
    m = r.mapping(raw, "sshKey", {"name", "publicKeyPath", "privateKeyPath"})
    name = r.string(m, "name", "sshKey", required=False)
    public = r.string(m, "publicKeyPath", "sshKey", required=False)
    private = r.string(m, "privateKeyPath", "sshKey", required=False)
    if public is None:
        if private is not None:
            r.fail(
                "sshKey.privateKeyPath",
                "given without publicKeyPath",
                "set sshKey.publicKeyPath too, or drop both to generate a key pair",
            )
        return SshKeyConfig(name)
    public_path = Path(public).expanduser()
    private = private or (public[:-4] if public.endswith(".pub") else None)
    private_path = Path(private).expanduser() if private else None
    public_ok = public_path.is_file()
    if not public_ok:
        r.fail(
            "sshKey.publicKeyPath",
            f"{public_path} does not exist",
            "create it (ssh-keygen -t ed25519) or remove sshKey.publicKeyPath to generate a key pair",
        )
    if private_path is None:
        r.fail(
            "sshKey.privateKeyPath",
            "cannot be derived (publicKeyPath does not end in .pub)",
            "set sshKey.privateKeyPath to the private half",
        )
    elif not private_path.is_file():
        r.fail(
            "sshKey.privateKeyPath",
            f"{private_path} does not exist",
            "point it at the private key of publicKeyPath: the fleet logs in with it",
        )
    elif public_ok:
        _check_key_pair(r, public_path, private_path)
    return SshKeyConfig(name, str(public_path), str(private_path) if private_path else None)


def _check_key_pair(r: Reader, public_path: Path, private_path: Path) -> None:
    """Both files parse and are halves of one key: Lambda gets the public half, the fleet logs in with the private."""
    derive = f"ssh-keygen -y -f {private_path} > {public_path}"
    public_key = _public_key(r, public_path, derive)
    private_key = _private_key(r, private_path)
    if public_key is not None and private_key is not None and private_key.public_data != public_key.public_data:
        r.fail(
            "sshKey.privateKeyPath",
            f"{private_path} (key {private_key.get_fingerprint()}) is not the private "
            f"half of sshKey.publicKeyPath {public_path} (key {public_key.get_fingerprint()}): the nodes would "
            "refuse the login",
            f"point privateKeyPath at the matching private key, or rewrite the public half from this one: `{derive}`",
        )


def _public_key(r: Reader, path: Path, derive: str) -> asyncssh.SSHKey | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as exc:
        r.fail("sshKey.publicKeyPath", f"cannot read {path}: {exc}", f"make it readable: chmod 644 {path}")
        return None
    if "PRIVATE KEY" in text:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} holds a private key, which would be uploaded to Lambda",
            f"point publicKeyPath at the public half (`{derive}` writes it)",
        )
        return None
    try:
        key = asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} is not an SSH public key ({exc})",
            f"write the public half of your private key there: `{derive}`",
        )
        return None
    if len(text.splitlines()) != 1:
        r.fail(
            "sshKey.publicKeyPath",
            f"{path} is not one OpenSSH `type base64 comment` line, the form Lambda accepts",
            f"rewrite it in OpenSSH form: `{derive}`",
        )
        return None
    return key


def _private_key(r: Reader, path: Path) -> asyncssh.SSHKey | None:
    try:
        return asyncssh.read_private_key(str(path))
    except (asyncssh.KeyImportError, ValueError) as exc:
        if "assphrase" in str(exc):
            r.fail(
                "sshKey.privateKeyPath",
                f"{path} is passphrase-protected; the fleet logs in unattended and cannot ask for it",
                f"remove the passphrase (`ssh-keygen -p -N '' -f {path}`) or make a key "
                "pair without one (ssh-keygen -t ed25519 -N '' -f ~/.ssh/lambda-sae)",
            )
        else:
            r.fail(
                "sshKey.privateKeyPath",
                f"{path} is not an SSH private key ({exc})",
                "point it at the private half of sshKey.publicKeyPath: the fleet logs in with it",
            )
    except OSError as exc:
        r.fail("sshKey.privateKeyPath", f"cannot read {path}: {exc}", f"make it readable: chmod 600 {path}")
    return None
