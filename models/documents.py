"""Documents attached to cases: their bytes in a content-addressed store outside the database.

A document is kept once under its SHA-256 (`<root>/<aa>/<sha256>`), written to a temporary file
and renamed into place, readable by the service's own user only. The case's ledger records the
hash in a `document_attached` event, so the chain covers the content; `problems` re-hashes
every attached document for `rogatory audit verify`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from models.errors import CommandRejected, LedgerTampered, NotFound, RogatoryError
from models.ledger import Document, Request
from models.privacy import CaseKeys

MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
"""The largest document accepted (25 MiB): a scanned request with its translation fits."""
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class DocumentKind(StrEnum):
    REQUEST = "request"
    TRANSLATION = "translation"
    REPLY = "reply"
    OTHER = "other"


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class DocumentStore:
    """Bytes by their SHA-256 under `root`: written once, never changed, re-hashed on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise NotFound(f"{sha256!r} is not a SHA-256 (64 lowercase hexadecimal digits)")
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes) -> str:
        """Keep `content`; its SHA-256. Storing the same content twice writes it once."""
        if len(content) > MAX_DOCUMENT_BYTES:
            raise CommandRejected(
                f"the document has {len(content)} bytes; at most {MAX_DOCUMENT_BYTES} "
                f"({MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB) are accepted: split or compress it"
            )
        sha256 = sha256_of(content)
        target = self.path(sha256)
        if target.exists() and self.verify(sha256):
            return sha256
        self._folder(self.root)
        self._folder(target.parent)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename is durable only once the folder holding it is.
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return sha256

    @staticmethod
    def _folder(path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise NotFound(f"document {sha256} is not in the store at {self.root}") from None

    def read(self, sha256: str) -> bytes:
        """The document's bytes, checked against their hash."""
        with self.open(sha256) as stream:
            content = stream.read()
        if sha256_of(content) != sha256:
            raise LedgerTampered(
                f"document {sha256} in {self.root} no longer matches its hash: restore it "
                "from a backup"
            )
        return content

    def verify(self, sha256: str) -> bool:
        """Whether the stored bytes are there and still hash to `sha256`."""
        digest = hashlib.sha256()
        try:
            with self.path(sha256).open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256


def documents_root(url: str | URL) -> Path:
    """Where a ledger's documents live: $ROGATORY_DOCUMENTS, else `documents/` beside its
    SQLite file. A PostgreSQL ledger has no file to sit beside: it needs the variable."""
    explicit = os.environ.get("ROGATORY_DOCUMENTS")
    if explicit:
        return Path(explicit)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).resolve().parent / "documents"
    raise RogatoryError(
        f"no folder for documents: set ROGATORY_DOCUMENTS (a {parsed.get_backend_name()} "
        "ledger has no file beside which to keep them)"
    )


@dataclass(frozen=True)
class AttachedDocument:
    """A document as a case lists it."""

    reference: str
    sha256: str
    kind: str
    filename: str
    media_type: str
    size: int
    seq: int
    actor: str
    recorded_at: datetime


def _rows(
    session: Session, *conditions: ColumnElement[bool], opened: bool = True
) -> list[AttachedDocument]:
    """Attached documents; their file names opened for a reader of the case if `opened`."""
    rows = session.execute(
        select(
            Request.reference,
            Document.sha256,
            Document.kind,
            Document.filename,
            Document.media_type,
            Document.size,
            Document.seq,
            Document.actor,
            Document.recorded_at,
        )
        .join(Request, Request.id == Document.request_id)
        .where(*conditions)
        .order_by(Request.id, Document.seq)
    ).all()
    if not opened:
        return [AttachedDocument(*row) for row in rows]
    keys = CaseKeys(session)
    return [
        AttachedDocument(
            row[0], row[1], row[2], keys.open_value(row[0], "filename", row[3]), *row[4:]
        )
        for row in rows
    ]


def attached(session: Session, *, reference: str) -> list[AttachedDocument]:
    """The documents attached to a case, in the order they were attached."""
    return _rows(session, Request.reference == reference)


def attached_one(session: Session, *, reference: str, sha256: str) -> AttachedDocument:
    """The document `sha256` as attached to this case; NotFound if it is not attached to it."""
    found = _rows(session, Request.reference == reference, Document.sha256 == sha256)
    if not found:
        raise NotFound(f"{reference} has no document {sha256}", reference=reference)
    return found[0]


@dataclass(frozen=True)
class DocumentProblem:
    reference: str
    seq: int
    sha256: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reference} event {self.seq}: document {self.sha256} {self.reason}"


def problems(
    session: Session, *, store: DocumentStore, reference: str | None = None
) -> list[DocumentProblem]:
    """Every attached document whose bytes are missing or no longer hash to what was recorded."""
    found = []
    conditions: list[ColumnElement[bool]] = (
        [] if reference is None else [Request.reference == reference]
    )
    for document in _rows(session, *conditions, opened=False):
        if not store.exists(document.sha256):
            reason = f"is missing from {store.root}"
        elif not store.verify(document.sha256):
            reason = "was altered: its bytes no longer hash to the recorded SHA-256"
        else:
            continue
        found.append(DocumentProblem(document.reference, document.seq, document.sha256, reason))
    return found


def any_attached(session: Session) -> bool:
    return session.scalar(select(Document.id).limit(1)) is not None
