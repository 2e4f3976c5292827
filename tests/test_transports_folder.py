"""The folder-drop transport on the real file system."""

from __future__ import annotations

from pathlib import Path

from kwhub.core.adapters import AdapterContext, FailureKind, OutgoingDocument
from kwhub.plugins.erp.folder_drop import FolderDropTransport


def _doc(body: bytes = b"<Invoice/>", filename: str = "INV-1_v1_ubl.xml") -> OutgoingDocument:
    return OutgoingDocument("inv-1", 1, "ubl", filename, "application/xml", body)


def test_writes_atomically_and_detects_duplicates(tmp_path: Path):
    drop = FolderDropTransport("drop", {"folder": "out/erp"}, AdapterContext(work_dir=tmp_path))
    res = drop.send(_doc(b"first"))
    target = tmp_path / "out/erp/INV-1_v1_ubl.xml"
    assert res.ok and not res.duplicate
    assert target.read_bytes() == b"first"
    again = drop.send(_doc(b"first"))
    assert again.ok and again.duplicate
    changed = drop.send(_doc(b"second"))
    assert changed.ok and not changed.duplicate and target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["INV-1_v1_ubl.xml"]  # no temp files left


def test_file_name_cannot_escape_the_folder(tmp_path: Path):
    folder = tmp_path / "drop"
    drop = FolderDropTransport("drop", {"folder": str(folder)})
    assert drop.send(_doc(filename="../../evil name.xml")).ok
    assert [p.name for p in folder.iterdir()] == ["evil_name.xml"]
    assert not (tmp_path / "evil name.xml").exists()


def test_missing_folder_without_create_is_a_configuration_error(tmp_path: Path):
    drop = FolderDropTransport("drop", {"folder": str(tmp_path / "absent"), "create": False})
    res = drop.send(_doc())
    assert not res.ok and not res.retryable
    check = drop.check()
    assert not check.ok and check.kind == FailureKind.CONFIGURATION


def test_check(tmp_path: Path):
    assert FolderDropTransport("d", {"folder": str(tmp_path)}).check().ok
    assert FolderDropTransport("d", {"folder": str(tmp_path / "new" / "sub")}).check().ok  # will be created
    a_file = tmp_path / "file"
    a_file.write_text("x")
    res = FolderDropTransport("d", {"folder": str(a_file)}).check()
    assert not res.ok and res.kind == FailureKind.CONFIGURATION and "not a directory" in res.message
    blocked = FolderDropTransport("d", {"folder": str(a_file / "sub")})
    send = blocked.send(_doc())
    assert not send.ok and not send.retryable


def test_written_files_get_the_configured_mode(tmp_path: Path):
    import stat

    import pytest
    from pydantic import ValidationError

    default = FolderDropTransport("drop", {"folder": str(tmp_path / "a")})
    assert default.send(_doc()).ok
    # owner read/write, group read (an ERP import job in the group reads it), nothing for others
    assert stat.S_IMODE((tmp_path / "a" / "INV-1_v1_ubl.xml").stat().st_mode) == 0o640
    shared = FolderDropTransport("drop", {"folder": str(tmp_path / "b"), "file_mode": "0660"})
    assert shared.send(_doc()).ok
    assert stat.S_IMODE((tmp_path / "b" / "INV-1_v1_ubl.xml").stat().st_mode) == 0o660
    toml_octal = FolderDropTransport("drop", {"folder": str(tmp_path / "c"), "file_mode": 0o644})
    assert toml_octal.send(_doc()).ok
    assert stat.S_IMODE((tmp_path / "c" / "INV-1_v1_ubl.xml").stat().st_mode) == 0o644
    for bad, why in (("0755", "not executable"), ("0440", "owner needs read and write"), ("rw-r-----", "octal"),
                     ("0999", "octal")):
        with pytest.raises(ValidationError, match=why):
            FolderDropTransport("drop", {"folder": str(tmp_path / "d"), "file_mode": bad})
