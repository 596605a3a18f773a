"""What used to end up as binary_content (which the shipped policy passes) but is content nobody here
can read: OpenPGP messages made by a real gpg, `openssl enc` output, age files, and password-protected
legacy Office files in OLE containers (Word fEncrypted, Excel FILEPASS, PowerPoint, encrypted OOXML)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dlp.extract import Extraction, extract_email, extract_file
from dlp.model import Reason
from tests.dlp.extract.cfb_writer import biff_workbook, ppt_current_user, word_fib, write_cfb
from tests.helpers.extraction import reasons

PAN = "4111111111111111"
SECRET = f"name,card\nAlice,{PAN}\n".encode()


def text_of(e: Extraction) -> str:
    return "\n".join(p.text for p in e.parts)


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    binary = shutil.which("gpg")
    if binary is None:
        pytest.skip("gpg is not installed (scripts/install-test-tools installs gnupg)")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    base = [binary, "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*base, "--quick-gen-key", "agent@callcenter.example", "future-default", "default", "never"],
                   check=True, capture_output=True, timeout=60)
    work = tmp_path_factory.mktemp("pgp")
    (work / "customers.csv").write_bytes(SECRET)
    return base, work


def run_gpg(gpg: tuple[list[str], Path], *args: str) -> bytes:
    base, work = gpg
    out = work / "out"
    out.unlink(missing_ok=True)
    subprocess.run([*base, "--yes", "-o", str(out), *args, str(work / "customers.csv")], check=True,
                   capture_output=True, timeout=60)
    return out.read_bytes()


def test_openpgp_encrypted_binary_and_armored(gpg) -> None:
    public = run_gpg(gpg, "--recipient", "agent@callcenter.example", "--encrypt")
    symmetric = run_gpg(gpg, "--passphrase", "pw", "--symmetric")
    armored = run_gpg(gpg, "--armor", "--recipient", "agent@callcenter.example", "--encrypt")
    for data, name in ((public, "customers.csv.gpg"), (symmetric, "x.bin"), (armored, "customers.asc")):
        assert reasons(extract_file(data, name)) == {Reason.ENCRYPTED_CONTENT}, name
    attached = (b"From: a@callcenter.example\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: application/octet-stream; name=data.pgp\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + __import__("base64").encodebytes(public))
    assert reasons(extract_email(attached)) == {Reason.ENCRYPTED_CONTENT}


def test_openpgp_signed_only_fails_closed(gpg) -> None:
    """Signed (compressed) OpenPGP is readable in principle but not unpacked here: extraction_failed,
    which the policy quarantines, rather than binary_content."""
    signed = run_gpg(gpg, "--sign")
    e = extract_file(signed, "customers.csv.gpg")
    assert reasons(e) == {Reason.EXTRACTION_FAILED}


def test_openssl_enc_and_age() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    done = subprocess.run([openssl, "enc", "-aes-256-cbc", "-pbkdf2", "-pass", "pass:pw"], input=SECRET,
                          capture_output=True, check=True, timeout=30)
    assert reasons(extract_file(done.stdout, "report.enc")) == {Reason.ENCRYPTED_CONTENT}
    age = b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- def\n" + os.urandom(64)
    assert reasons(extract_file(age, "report.age")) == {Reason.ENCRYPTED_CONTENT}


def test_random_binary_is_not_mistaken_for_pgp() -> None:
    for first in range(0x80, 0x100):
        data = bytes([first]) + bytes(range(128, 256)) * 4
        assert reasons(extract_file(data, "blob.bin")) == {Reason.BINARY_CONTENT}, hex(first)


# --------------------------------------------------------------------------------- legacy Office


def test_password_protected_legacy_office() -> None:
    cases = {
        "salaries.doc": write_cfb({"WordDocument": word_fib(encrypted=True), "1Table": b"\x00" * 600}),
        "salaries.xls": write_cfb({"Workbook": biff_workbook(filepass=True, text="x" * 5000)}),
        "small.xls": write_cfb({"Workbook": biff_workbook(filepass=True)}),  # in the mini stream
        "deck.ppt": write_cfb({"Current User": ppt_current_user(encrypted=True), "PowerPoint Document": b"\0" * 9000}),
        "salaries.xlsx": write_cfb({"EncryptionInfo": b"\x04\x00\x04\x00" + b"\0" * 200,
                                    "EncryptedPackage": os.urandom(5000)}),
    }
    for name, data in cases.items():
        e = extract_file(data, name)
        assert reasons(e) == {Reason.ENCRYPTED_CONTENT}, name
        assert not e.parts, name


def test_readable_legacy_office_keeps_its_strings() -> None:
    cases = {
        "notes.doc": write_cfb({"WordDocument": word_fib(text=f"Customer card {PAN}")}),
        "book.xls": write_cfb({"Workbook": biff_workbook(text=f"card {PAN}")}),
        "deck.ppt": write_cfb({"Current User": ppt_current_user(), "PowerPoint Document": f"card {PAN}".encode()}),
    }
    for name, data in cases.items():
        e = extract_file(data, name)
        assert not reasons(e), name
        assert PAN in text_of(e), name


def test_broken_compound_file_falls_back() -> None:
    good = write_cfb({"WordDocument": word_fib(text=f"Customer card {PAN}")})
    cyclic = bytearray(good)
    fat_sector = int.from_bytes(good[0x4C:0x50], "little")
    start = (fat_sector + 1) * 512
    cyclic[start : start + 4] = (0).to_bytes(4, "little")  # sector 0 points at itself
    e = extract_file(bytes(cyclic), "loop.doc")
    assert PAN in text_of(e)  # strings still read; no hang, no crash
