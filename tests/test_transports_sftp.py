"""The SFTP transport against a real OpenSSH server on loopback (``sshd_server`` fixture)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import FailureKind, OutgoingDocument
from kwhub.plugins.erp.sftp import SftpTransport
from tests.fixtures.outbox import free_port

pytestmark = pytest.mark.sshd


def _doc(n: int = 1, body: bytes = b"<Invoice>1</Invoice>") -> OutgoingDocument:
    return OutgoingDocument(f"inv-{n}", 1, "ubl", f"INV-{n}_v1_ubl.xml", "application/xml", body)


def test_check_and_upload(sshd_server):
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config())
    try:
        check = sftp.check()
        assert check.ok, check.message
        assert check.details["entries"] == 0
        res = sftp.send(_doc(1, b"hello"))
        assert res.ok and not res.duplicate, res.message
        assert (sshd_server.remote_dir / "INV-1_v1_ubl.xml").read_bytes() == b"hello"
        again = sftp.send(_doc(1, b"hello"))
        assert again.ok and again.duplicate
        replaced = sftp.send(_doc(1, b"hello, restated"))
        assert replaced.ok and not replaced.duplicate
        assert (sshd_server.remote_dir / "INV-1_v1_ubl.xml").read_bytes() == b"hello, restated"
        for n in range(2, 6):
            assert sftp.send(_doc(n)).ok
        assert sftp.check().details["entries"] == 5
        # only final names: every temporary upload was renamed or removed
        assert sorted(p.name for p in sshd_server.remote_dir.iterdir()) == [f"INV-{n}_v1_ubl.xml" for n in range(1, 6)]
    finally:
        sftp.close()


def test_uploaded_files_get_the_configured_mode(sshd_server):
    import stat

    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config())
    try:
        assert sftp.send(_doc(1)).ok
        # default 0640: the receiving group reads what kwhub uploads
        assert stat.S_IMODE((sshd_server.remote_dir / "INV-1_v1_ubl.xml").stat().st_mode) == 0o640
    finally:
        sftp.close()
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config(file_mode="0644"))
    try:
        assert sftp.send(_doc(2)).ok
        assert stat.S_IMODE((sshd_server.remote_dir / "INV-2_v1_ubl.xml").stat().st_mode) == 0o644
    finally:
        sftp.close()
    with pytest.raises(ValidationError, match="file_mode"):
        SftpTransport("erp_sftp", sshd_server.sftp_config(file_mode="0777"))


def test_reconnects_after_server_side_disconnect(sshd_server):
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config())
    try:
        assert sftp.send(_doc(1)).ok
        sftp._run(sftp._disconnect())  # as if the server had dropped the idle connection
        assert sftp.send(_doc(2)).ok
    finally:
        sftp.close()


def test_unknown_host_key_is_a_configuration_error(sshd_server, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config(known_hosts=str(empty)))
    try:
        check = sftp.check()
        assert not check.ok and check.kind == FailureKind.CONFIGURATION and "host key" in check.message
        res = sftp.send(_doc())
        assert not res.ok and not res.retryable
    finally:
        sftp.close()
    unchecked = SftpTransport("erp_sftp", sshd_server.sftp_config(known_hosts=str(empty), host_key_checking=False))
    try:
        assert unchecked.check().ok
    finally:
        unchecked.close()


def test_wrong_key_is_an_authentication_failure(sshd_server, tmp_path):
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config(private_key=str(other)))
    try:
        check = sftp.check()
        assert not check.ok and check.kind == FailureKind.CONFIGURATION and "authentication" in check.message
        res = sftp.send(_doc())
        assert not res.ok and not res.retryable
    finally:
        sftp.close()


def test_missing_remote_dir_is_not_retried(sshd_server):
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config(remote_dir=str(sshd_server.remote_dir / "absent")))
    try:
        res = sftp.send(_doc())
        assert not res.ok and not res.retryable
        assert sftp.check().kind == FailureKind.CONFIGURATION
    finally:
        sftp.close()


def test_server_down_is_transient(sshd_server):
    sftp = SftpTransport("erp_sftp", sshd_server.sftp_config(port=free_port(), connect_timeout_s=2))
    try:
        check = sftp.check()
        assert not check.ok and check.kind == FailureKind.TRANSIENT
        res = sftp.send(_doc())
        assert not res.ok and res.retryable
    finally:
        sftp.close()


def test_credentials_required():
    with pytest.raises(ValidationError, match="private_key or password"):
        SftpTransport("x", {"host": "h", "username": "u"})
