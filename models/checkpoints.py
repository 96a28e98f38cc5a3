"""Signed checkpoints: every case's head folded into a Merkle root, signed, and witnessed outside.

An insider with database access can rewrite a whole chain consistently, cut a chain short and
rewind its head, or delete a case: the chains still verify. What catches them is a record kept
beyond their reach. Each sweep (and `rogatory audit checkpoint`) verifies the cases that moved
since the last checkpoint plus a rolling slice of the others (models.integrity), then seals:
the head (last sequence, hash) of every case is folded, in reference order, into a Merkle root
with the case count; the statement (number, instant, count, root, the previous statement's
digest) is signed with an Ed25519 key kept outside the database, and appended, with the heads
sealed since the checkpoint before, to the witness: an append-only JSON-lines file on another
path (optionally also told to the auditors' apprise tag). `audit verify` folds the witness back
into every case's sealed head, checks each signature and the final root, and names each case
missing, truncated or rewritten since.

A case that does not verify keeps its last good seal, is marked in `tampered_cases` (every
command on it is refused), and the admin and the auditors are told once. The checkpoint covers
events as stored: when personal fields are encrypted (issue 14, item 4) the chain and every
seal cover the ciphertext, so erasing a case key changes no seal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from models import problems
from models.errors import RogatoryError
from models.integrity import (
    CheckedCases,
    Finding,
    Seal,
    all_case_ids,
    check_cases,
    ids_of,
    missing_finding,
    orphans,
)
from models.ledger import (
    GENESIS,
    CaseSeal,
    Checkpoint,
    Ledger,
    Request,
    TamperedCase,
    canonical,
    insert_if_absent,
)
from models.notices import AUDITORS_TAG, checkpoint_notice, tampered_notice

KEY_VARIABLE = "ROGATORY_CHECKPOINT_KEY"
"""The Ed25519 signing key's file (PEM, mode 0600), outside the ledger's folder."""
PUBLIC_KEY_VARIABLE = "ROGATORY_CHECKPOINT_PUBLIC_KEY"
"""Where a verifier without the signing key finds the public key (hex or PEM)."""
WITNESS_VARIABLE = "ROGATORY_WITNESS"
"""The witness file: one JSON line per checkpoint, appended only, on another path."""
WITNESS_NOTIFY_VARIABLE = "ROGATORY_WITNESS_NOTIFY"
"""`1`: each checkpoint is also told to the auditors' apprise tag."""
STAGE = "integrity"
"""The problems stage of a case that does not verify."""
ROLLING_SLICE = 1_000
"""Cases re-verified by each sweep besides those that moved: a 200,000-case ledger is gone
through in 200 sweeps (under 17 hours at one sweep every 5 minutes)."""


class CheckpointError(RogatoryError):
    """The checkpoint key or the witness cannot be used as configured."""


# -- the Merkle root ----------------------------------------------------------------------------


def leaf(reference: str, seq: int, head: str) -> bytes:
    return hashlib.sha256(f"\x00{reference}\x1f{seq}\x1f{head}".encode()).digest()


def leaves_of(seals: Mapping[str, Seal]) -> dict[str, bytes]:
    return {r: leaf(r, s.seq, s.hash) for r, s in seals.items()}


def root_of(leaves: Mapping[str, bytes]) -> str:
    """The Merkle root over the leaves in reference order (RFC 6962's leaf and node prefixes;
    an odd node is carried up)."""
    level = [leaves[r] for r in sorted(leaves)]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    sha = hashlib.sha256
    while len(level) > 1:
        paired = [
            sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def merkle_root(seals: Mapping[str, Seal]) -> str:
    """The root over every case's head (reference, last sequence, hash)."""
    return root_of(leaves_of(seals))


def statement_digest(statement: str) -> str:
    return hashlib.sha256(statement.encode()).hexdigest()


# -- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """A checkpoint signer's public key."""

    public: Any
    """cryptography's Ed25519PublicKey."""

    @property
    def raw(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(
            self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verify(self, statement: str, signature: str | None) -> bool:
        from cryptography.exceptions import InvalidSignature

        if not signature:
            return False
        try:
            self.public.verify(bytes.fromhex(signature), statement.encode())
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_text(cls, text: str) -> Verifier:
        """A public key written as 64 hex digits, or as PEM."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        text = text.strip()
        try:
            if text.startswith("-----BEGIN"):
                public = serialization.load_pem_public_key(text.encode())
                if not isinstance(public, Ed25519PublicKey):
                    raise ValueError("not an Ed25519 public key")
                return cls(public)
            return cls(Ed25519PublicKey.from_public_bytes(bytes.fromhex(text)))
        except ValueError as exc:
            raise CheckpointError(f"cannot read the checkpoint public key: {exc}") from None


@dataclass(frozen=True)
class Signer:
    """The checkpoint signing key (Ed25519)."""

    private: Any
    """cryptography's Ed25519PrivateKey."""

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private.public_key())

    def sign(self, statement: str) -> str:
        return bytes(self.private.sign(statement.encode())).hex()

    @classmethod
    def from_pem(cls, text: str, *, where: str) -> Signer:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            private = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{where} holds no readable PEM private key ({exc})") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise CheckpointError(f"{where} holds a {type(private).__name__}, not an Ed25519 key")
        return cls(private)

    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return str(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        )


def ledger_folders(url: str) -> list[Path]:
    """Folders that hold the ledger or its working files: a key or witness there is refused."""
    from sqlalchemy.engine import make_url

    folders = [Path(os.environ.get("ROGATORY_VAR", "var")).resolve()]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        folders.append(Path(parsed.database).resolve().parent)
    return folders


def outside_ledger(path: Path, *, ledger_url: str, what: str, variable: str) -> Path:
    resolved = path.expanduser().resolve()
    for folder in ledger_folders(ledger_url):
        if resolved == folder or folder in resolved.parents:
            raise CheckpointError(
                f"{what} {resolved} is inside the ledger's folder {folder}: whoever can change "
                f"the ledger could change it too. Point ${variable} at a path outside it"
            )
    return resolved


def create_key(path: Path) -> Signer:
    """A new signing key in `path` (mode 0600, its folder 0700) and its public key beside it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = Signer(Ed25519PrivateKey.generate())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CheckpointError(f"{path} exists already: a key is never overwritten") from None
    with os.fdopen(fd, "w") as out:
        out.write(signer.pem())
    public_file(path).write_text(signer.verifier.raw.hex() + "\n")
    return signer


def public_file(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def load_key(path: Path) -> Signer:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise CheckpointError(
            f"{path} is readable by others (mode {mode:o}): `chmod 600 {path}`, and consider "
            "the key exposed"
        )
    return Signer.from_pem(path.read_text(), where=str(path))


def signer_from_env(*, ledger_url: str, create: bool) -> Signer | None:
    """The key $ROGATORY_CHECKPOINT_KEY names, to sign with (`create`: made on first use, and
    refused inside the ledger's folder) or only to verify with; None when the variable is
    unset, or names no file yet and nothing is to be signed."""
    raw = os.environ.get(KEY_VARIABLE, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not create:
        # Verifying (audit verify, a restore) reads the public half only; where the key lies
        # is the signing sweep's concern.
        return load_key(path) if path.exists() else None
    path = outside_ledger(
        path, ledger_url=ledger_url, what="the checkpoint key", variable=KEY_VARIABLE
    )
    return load_key(path) if path.exists() else create_key(path)


def verifier_from_env(signer: Signer | None) -> Verifier | None:
    if signer is not None:
        return signer.verifier
    raw = os.environ.get(PUBLIC_KEY_VARIABLE, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    return Verifier.from_text(path.read_text() if path.exists() else raw)


# -- the witness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessLine:
    statement: dict[str, Any]
    signature: str | None
    heads: dict[str, list[Any]]

    @property
    def number(self) -> int:
        return int(self.statement["checkpoint"])

    @property
    def text(self) -> str:
        return canonical(self.statement)


@dataclass(frozen=True)
class Witness:
    """The append-only witness file."""

    path: Path

    @classmethod
    def from_env(cls, *, ledger_url: str) -> Witness | None:
        raw = os.environ.get(WITNESS_VARIABLE, "").strip()
        if not raw:
            return None
        path = outside_ledger(
            Path(raw), ledger_url=ledger_url, what="the witness", variable=WITNESS_VARIABLE
        )
        return cls(path)

    @contextmanager
    def locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def lines(self) -> Iterator[tuple[int, WitnessLine | str]]:
        """Each line with its number: parsed, or the reason it cannot be."""
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as stream:
            for number, text in enumerate(stream, start=1):
                yield number, _parse_line(text)

    def last(self) -> WitnessLine | str | None:
        """The last line's statement and signature (not its heads), read from the end of the
        file (it grows by a line every sweep)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            end = stream.tell()
            size = 4096
            while True:
                start = max(0, end - size)
                stream.seek(start)
                chunk = stream.read(end - start)
                body = chunk.rstrip(b"\n")
                cut = body.rfind(b"\n")
                if cut >= 0 or start == 0:
                    text = body[cut + 1 :].decode("utf-8", errors="replace")
                    return _parse_line(text, heads=False) if text.strip() else None
                size *= 4

    def catch_up(self, rows: Sequence[Checkpoint], verifier: Verifier | None) -> list[int]:
        """Append, in order, the checkpoints the witness has not got yet; their numbers.

        Under an exclusive lock, so two sweeps never interleave or repeat lines. A checkpoint
        whose signature does not verify is not appended: it was not made with the key."""
        appended: list[int] = []
        with self.locked() as fd:
            last = self.last()
            if isinstance(last, str):  # a torn or edited last line: a person must look
                raise CheckpointError(
                    f"the last line of the witness {self.path} is {last}: nothing appended"
                )
            known = 0 if last is None else last.number
            for row in sorted(rows, key=lambda r: r.number):
                if row.number <= known:
                    continue
                if verifier is not None and not verifier.verify(row.statement, row.signature):
                    # With a key, only what it signed is witnessed: a row written into the
                    # ledger by hand never reaches the witness.
                    raise CheckpointError(
                        f"checkpoint {row.number} in the ledger is not signed by the checkpoint "
                        "key, so it is not witnessed: run `rogatory audit verify`"
                    )
                os.write(fd, (witness_line(row) + "\n").encode())
                appended.append(row.number)
            if appended:
                os.fsync(fd)
        return appended


def witness_line(row: Checkpoint) -> str:
    """One checkpoint as the witness keeps it: the statement exactly as signed comes first, so
    the last line's statement is read without parsing the heads (the first line holds them
    all)."""
    return (
        f'{{"statement":{row.statement},"signature":{json.dumps(row.signature)},'
        f'"heads":{canonical(row.heads)}}}'
    )


_PREFIX = '{"statement":'
_DECODER = json.JSONDecoder()


def _parse_line(text: str, *, heads: bool = True) -> WitnessLine | str:
    try:
        if heads or not text.startswith(_PREFIX):
            data = json.loads(text)
            return WitnessLine(data["statement"], data.get("signature"), data.get("heads") or {})
        statement, end = _DECODER.raw_decode(text, len(_PREFIX))
        rest = text[end:]
        if not rest.startswith(',"signature":'):
            raise ValueError("no signature after the statement")
        signature, _ = _DECODER.raw_decode(rest, len(',"signature":'))
        return WitnessLine(statement, signature, {})
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({type(exc).__name__})"


@dataclass
class Folded:
    """The witness read back: every case's sealed head, and what is wrong with the file."""

    seals: dict[str, Seal] = field(default_factory=dict)
    last: WitnessLine | None = None
    findings: list[Finding] = field(default_factory=list)
    unsigned: int = 0
    """Checkpoints witnessed before any was signed (no key was configured then)."""


def fold(witness: Witness, verifier: Verifier | None) -> Folded:
    """Every line in order: numbers consecutive, each naming the digest of the one before,
    each signed by the key (lines from before any was signed are counted apart); the heads
    folded; the final root and count as the last line says."""
    out = Folded()
    previous = GENESIS
    expected = 1
    signed_before = False
    for number, line in witness.lines():
        where = f"{witness.path}:{number}"
        if isinstance(line, str):
            out.findings.append(_ledger(f"witness line {where} is {line}"))
            continue
        if line.number != expected:
            out.findings.append(
                _ledger(f"witness {where} holds checkpoint {line.number}, expected {expected}")
            )
        if line.statement.get("previous") != previous:
            out.findings.append(
                _ledger(f"witness {where}: checkpoint {line.number} does not follow the one before")
            )
        signed = line.statement.get("key") is not None
        if not signed and not signed_before:
            out.unsigned += 1
        elif verifier is not None and not verifier.verify(line.text, line.signature):
            out.findings.append(
                _ledger(f"witness {where}: checkpoint {line.number} is not signed by the key")
            )
        signed_before = signed_before or signed
        for reference, (seq, head) in line.heads.items():
            out.seals[reference] = Seal(0, int(seq), str(head), line.number)
        previous = statement_digest(line.text)
        expected = line.number + 1
        out.last = line
    if out.last is not None:
        root = merkle_root(out.seals)
        if root != out.last.statement.get("root") or len(out.seals) != out.last.statement.get(
            "cases"
        ):
            out.findings.append(
                _ledger(
                    f"witness {witness.path}: its heads do not fold into checkpoint "
                    f"{out.last.number}'s root"
                )
            )
    return out


def _ledger(reason: str, **detail: Any) -> Finding:
    return Finding("ledger", None, reason, "ledger", detail)


# -- reading a consistent ledger ----------------------------------------------------------------


@contextmanager
def snapshot(ledger: Ledger) -> Iterator[Session]:
    """A read session that sees one instant of the ledger across all its statements.

    PostgreSQL reads at REPEATABLE READ (at its default, READ COMMITTED, a command committing
    between the read of a case's row and of its events would look like tampering); a SQLite
    read transaction in WAL mode already sees one snapshot, and blocks no writer.
    """
    with ledger.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with Session(bind=connection, expire_on_commit=False) as session, session.begin():
            yield session


def latest_checkpoint(session: Session) -> Checkpoint | None:
    """The latest checkpoint, without the heads it sealed (the first one's hold every case)."""
    return session.scalars(
        select(Checkpoint)
        .options(defer(Checkpoint.heads, raiseload=True))
        .order_by(Checkpoint.number.desc())
        .limit(1)
    ).first()


def stored_seals(session: Session) -> dict[str, Seal]:
    """Every case's head as the latest checkpoint sealed it, as the ledger keeps them."""
    rows = _rows(session, "SELECT reference, request_id, seq, hash, checkpoint FROM case_seals")
    return {r: Seal(i, seq, h, c) for r, i, seq, h, c in rows}


def stored_heads(session: Session) -> dict[str, Seal]:
    """Every case's head as the `requests` rows hold it."""
    rows = _rows(session, "SELECT reference, id, last_seq, head_hash FROM requests")
    return {r: Seal(i, seq, h) for r, i, seq, h in rows}


def moved_heads(session: Session) -> dict[str, Seal]:
    """The heads of the cases that moved since their seal, or have none yet."""
    rows = _rows(
        session,
        "SELECT r.reference, r.id, r.last_seq, r.head_hash FROM requests r "
        "LEFT JOIN case_seals s ON s.reference = r.reference "
        "WHERE s.reference IS NULL OR s.seq <> r.last_seq OR s.hash <> r.head_hash",
    )
    return {r: Seal(i, seq, h) for r, i, seq, h in rows}


def missing_references(session: Session) -> list[str]:
    """Cases sealed by a checkpoint that the ledger no longer holds."""
    rows = _rows(
        session,
        "SELECT s.reference FROM case_seals s "
        "LEFT JOIN requests r ON r.reference = s.reference WHERE r.id IS NULL",
    )
    return [r for (r,) in rows]


def _rows(session: Session, sql: str) -> list[Any]:
    # Every case's row, each sweep: straight from the driver's cursor, which reads them several
    # times faster than a result that converts each value (these need no converting).
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def sealed_state_findings(
    last: Checkpoint, *, root: str, cases: int, verifier: Verifier | None
) -> list[Finding]:
    """Is the ledger's own record of its last checkpoint (`root` and `cases`: what its seals
    fold into) what was signed and sealed?"""
    found = []
    if verifier is not None and not verifier.verify(last.statement, last.signature):
        found.append(_ledger(f"checkpoint {last.number} in the ledger is not signed by the key"))
    if root != last.root or cases != last.cases:
        found.append(
            _ledger(
                f"the heads the ledger keeps for checkpoint {last.number} do not fold into its "
                "root: case_seals was changed"
            )
        )
    return found


def witness_vs_ledger(last: Checkpoint | None, line: WitnessLine | str | None) -> list[Finding]:
    """The ledger's latest checkpoint against the witness's last line (caught up first)."""
    if isinstance(line, str):
        return [_ledger(f"the witness's last line is {line}")]
    if line is None:
        return []
    if last is None or line.number > last.number:
        return [
            _ledger(
                f"the witness holds checkpoint {line.number} but the ledger's checkpoints end at "
                f"{last.number if last else 'none'}: checkpoints were deleted from the ledger"
            )
        ]
    if line.number == last.number and line.text != last.statement:
        return [_ledger(f"checkpoint {last.number} in the ledger is not the one witnessed")]
    return []


def _witnessed(witness: Witness) -> int:
    line = witness.last()
    return line.number if isinstance(line, WitnessLine) else 0


def _rows_after(session: Session, number: int) -> list[Checkpoint]:
    return list(
        session.scalars(
            select(Checkpoint).where(Checkpoint.number > number).order_by(Checkpoint.number)
        )
    )


def catch_up(ledger: Ledger, witness: Witness, verifier: Verifier | None) -> list[int]:
    """Bring the witness up to the ledger's latest checkpoint (a sweep that stopped between
    its commit and its witness line leaves one behind)."""
    with ledger.session() as session:
        return witness.catch_up(_rows_after(session, _witnessed(witness)), verifier)


# -- what the sweep and `audit checkpoint` do ---------------------------------------------------


@dataclass
class SealResult:
    """What one verification-and-checkpoint did."""

    checkpoint: int | None
    """The number recorded; None when none was (`skipped` says why)."""
    cases: int = 0
    sealed: int = 0
    """Heads sealed anew: cases that moved since the checkpoint before and verified."""
    verified: int = 0
    """Cases verified: those that moved, those marked tampered, and the rolling slice."""
    findings: list[Finding] = field(default_factory=list)
    root: str | None = None
    signed: bool = False
    witnessed: list[int] = field(default_factory=list)
    told: int = 0
    """Problems told for the first time (to the admin and the auditors)."""
    skipped: str = ""


def seal(
    ledger: Ledger,
    *,
    routings: Any,
    now: datetime,
    signer: Signer | None,
    witness: Witness | None,
    found_by: str,
    rolling: int = ROLLING_SLICE,
    notify: bool = False,
) -> SealResult:
    """Verify the cases that moved since the last checkpoint (and a rolling slice of the
    others), record what does not verify, then seal and sign a checkpoint and witness it.

    The reading happens in one snapshot, blocking no command; the writing in one short
    transaction, which gives way if another checkpoint was recorded meanwhile. A ledger whose
    record of its last checkpoint does not verify, with no intact witness to say what that
    checkpoint sealed, gets no new checkpoint: it would sign whatever was changed.
    """
    verifier = signer.verifier if signer is not None else None
    if witness is not None:
        catch_up(ledger, witness, verifier)
    with snapshot(ledger) as session:
        last = latest_checkpoint(session)
        seals = stored_seals(session)
        leaves = leaves_of(seals)
        doubts = []
        if last is not None:
            doubts = sealed_state_findings(
                last, root=root_of(leaves), cases=len(seals), verifier=verifier
            )
        if witness is not None:
            doubts += witness_vs_ledger(last, witness.last())
        trusted = not doubts
        if doubts and witness is not None:
            folded = fold(witness, verifier)
            if not folded.findings and folded.last is not None:
                seals = _with_ids(folded.seals, seals)
                leaves = leaves_of(seals)
                trusted = True
            doubts += folded.findings
        if doubts:  # the seals are the witness's: compare every head with them here
            heads = stored_heads(session)
            moved = {r: h for r, h in heads.items() if r not in seals or seals[r][1:3] != h[1:3]}
            gone = {r for r in seals if r not in heads}
        else:  # the ledger's own seals verified: the database compares them
            moved = moved_heads(session)
            gone = set(missing_references(session))
        marked = set(session.scalars(select(TamperedCase.reference))) - gone
        rolled = _slice(sorted(set(seals) - gone), last.cursor if last else None, rolling)
        others = (marked | set(rolled)) - set(moved)
        checked = check_cases(
            session,
            request_ids=sorted([h.request_id for h in moved.values()] + ids_of(session, others)),
            routings=routings,
            seals=seals,
        )
    missing = {r: seals[r] for r in sorted(gone)}
    result = SealResult(None, verified=len(checked.findings))
    result.findings = (
        doubts + checked.broken() + [missing_finding(r, s) for r, s in missing.items()]
    )
    number = (last.number if last is not None else 0) + 1
    fresh = {
        r: Seal(checked.heads[r].request_id, checked.heads[r].seq, checked.heads[r].hash, number)
        for r in checked.intact
        if r in moved
    }
    new_seals = {**seals, **fresh}
    with ledger.transaction() as session:
        result.told = record_findings(
            session,
            checked=checked,
            missing=missing,
            doubts=doubts,
            now=now,
            found_by=found_by,
        )
    if not trusted:
        result.skipped = (
            "no checkpoint sealed: the ledger's record of its last checkpoint does not verify "
            "and no intact witness says what it sealed"
        )
        return result
    root = root_of({**leaves, **leaves_of(fresh)})
    statement = canonical(
        {
            "checkpoint": number,
            "at": now.isoformat(),
            "cases": len(new_seals),
            "root": root,
            "previous": GENESIS if last is None else statement_digest(last.statement),
            "sealed": len(fresh),
            "key": None if verifier is None else verifier.key_id,
        }
    )
    signature = None if signer is None else signer.sign(statement)
    try:
        with ledger.transaction() as session:
            if session.scalar(select(func.max(Checkpoint.number))) != (
                None if last is None else last.number
            ):
                result.skipped = "another checkpoint was recorded meanwhile"
                return result
            session.add(
                Checkpoint(
                    number=number,
                    created_at=now,
                    cases=len(new_seals),
                    root=root,
                    statement=statement,
                    signature=signature,
                    heads={r: [s.seq, s.hash] for r, s in sorted(fresh.items())},
                    cursor=rolled[-1] if rolled else None,
                )
            )
            session.flush()
            # Written whole when the witness had to say what was sealed: the ledger's copy
            # was the one in doubt.
            _write_seals(session, new_seals if doubts else fresh, replace_all=bool(doubts))
            if notify:
                from models import deliveries

                deliveries.record(
                    session.connection(),
                    [checkpoint_notice(statement, signature, now=now)],
                    now=now,
                )
    except IntegrityError:
        result.skipped = "another checkpoint took the same number meanwhile"
        return result
    result.checkpoint = number
    result.cases = len(new_seals)
    result.sealed = len(fresh)
    result.root = root
    result.signed = signature is not None
    if witness is not None:
        result.witnessed = catch_up(ledger, witness, verifier)
    return result


def _with_ids(folded: Mapping[str, Seal], known: Mapping[str, Seal]) -> dict[str, Seal]:
    """The witness's seals, with the request ids the ledger's seals knew (the witness names
    cases by reference only)."""
    return {
        r: Seal(known[r].request_id if r in known else 0, s.seq, s.hash, s.checkpoint)
        for r, s in folded.items()
    }


def _slice(ordered: Sequence[str], cursor: str | None, size: int) -> list[str]:
    """The `size` references after `cursor`, wrapping round to the first."""
    if size <= 0 or not ordered:
        return []
    from bisect import bisect_right

    start = 0 if cursor is None else bisect_right(ordered, cursor)
    taken = list(ordered[start : start + size])
    if len(taken) < size:
        taken += [r for r in ordered[: size - len(taken)] if r not in taken]
    return taken


def _write_seals(session: Session, seals: Mapping[str, Seal], *, replace_all: bool) -> None:
    wanted = sorted(seals)
    if replace_all:
        session.execute(delete(CaseSeal))
    else:
        for start in range(0, len(wanted), 500):
            session.execute(
                delete(CaseSeal).where(CaseSeal.reference.in_(wanted[start : start + 500]))
            )
    if wanted:
        session.execute(
            insert(CaseSeal),
            [
                {
                    "reference": r,
                    "request_id": seals[r].request_id,
                    "seq": seals[r].seq,
                    "hash": seals[r].hash,
                    "checkpoint": seals[r].checkpoint or 0,
                }
                for r in wanted
            ],
        )


# -- findings: marked, recorded, told once ------------------------------------------------------


def record_findings(
    session: Session,
    *,
    checked: CheckedCases,
    missing: Mapping[str, Seal],
    doubts: Sequence[Finding],
    now: datetime,
    found_by: str,
) -> int:
    """Mark each case that does not verify (its commands are refused), unmark each checked
    case that verifies again, and tell the admin and the auditors once per distinct finding;
    how many were told for the first time."""
    broken: dict[str, tuple[int | None, Finding]] = {}
    for reference, found in checked.findings.items():
        if found:
            broken[reference] = (checked.heads[reference].request_id, found[0])
    for reference, sealed in missing.items():
        broken[reference] = (sealed.request_id or None, missing_finding(reference, sealed))
    connection = session.connection()
    for reference, (request_id, finding) in sorted(broken.items()):
        insert_if_absent(
            connection,
            TamperedCase,
            {
                "reference": reference,
                "request_id": request_id,
                "found_at": now,
                "found_by": found_by[:128],
                "reason": finding.what,
            },
        )
    intact = checked.intact
    for start in range(0, len(intact), 500):
        session.execute(
            delete(TamperedCase).where(TamperedCase.reference.in_(intact[start : start + 500]))
        )
    failures = [
        # A deleted case's id names no row any more: its problem is kept by reference alone.
        problems.Failure(
            reference, None if reference in missing else request_id, "", STAGE, finding.what
        )
        for reference, (request_id, finding) in sorted(broken.items())
    ] + [problems.Failure("ledger", None, "", STAGE, f.reason) for f in doubts]
    told = problems.record_failures(
        session,
        failures,
        coordinators={},
        now=now,
        tags=(AUDITORS_TAG,),
        notice=tampered_notice,
    )
    problems.resolve(
        session, stage=STAGE, worked=[*intact, *([] if doubts else ["ledger"])], now=now
    )
    return told


# -- what `audit verify` does -------------------------------------------------------------------


@dataclass
class Audit:
    """Every case checked against its events, and the ledger against its latest checkpoint."""

    findings: list[Finding]
    cases: int
    checkpoint: dict[str, Any] | None
    """The statement of the checkpoint compared with (None: there is none yet)."""
    source: str
    """Where the sealed heads came from: the witness file, or the ledger's own record."""
    not_compared: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def audit(
    ledger: Ledger,
    *,
    routings: Any,
    verifier: Verifier | None,
    witness: Witness | None,
    reference: str | None = None,
    now: datetime,
    record: bool = True,
    found_by: str = "rogatory audit verify",
) -> Audit:
    """Verify every case (or one): chain, stored head, projections rebuilt from its events, and
    the head the latest checkpoint sealed; name every sealed case now missing. With `record`,
    what does not verify is marked and told, as a sweep would."""
    notes: list[str] = []
    with snapshot(ledger) as session:
        last = latest_checkpoint(session)
        seals = stored_seals(session)
        doubts: list[Finding] = []
        source = "none"
        compared: dict[str, Any] | None = None
        if witness is not None and witness.path.exists():
            folded = fold(witness, verifier)
            doubts += folded.findings + witness_vs_ledger(last, folded.last)
            if folded.last is not None:
                seals = _with_ids(folded.seals, seals)
                source, compared = f"the witness {witness.path}", folded.last.statement
                if last is not None and last.number > folded.last.number:
                    notes.append(
                        f"the witness is at checkpoint {folded.last.number}, the ledger at "
                        f"{last.number}: the next sweep catches it up"
                    )
            if folded.unsigned:
                notes.append(f"{folded.unsigned} early checkpoint(s) were made without a key")
        elif last is not None:
            doubts += sealed_state_findings(
                last, root=merkle_root(seals), cases=len(seals), verifier=verifier
            )
            source, compared = "the ledger's own checkpoint record", json.loads(last.statement)
            if witness is None:
                notes.append(
                    f"no witness configured (${WITNESS_VARIABLE}): the ledger's own record of "
                    "its checkpoints was used, which an insider could have changed too"
                )
        if last is not None and verifier is None:
            notes.append(
                f"signatures not checked: no key (${KEY_VARIABLE} or ${PUBLIC_KEY_VARIABLE})"
            )
        references = set(session.scalars(select(Request.reference)))
        if reference is None:
            ids = all_case_ids(session)
        else:
            ids = list(session.scalars(select(Request.id).where(Request.reference == reference)))
        checked = check_cases(session, request_ids=ids, routings=routings, seals=seals)
        missing = {
            r: s
            for r, s in seals.items()
            if r not in references and (reference is None or r == reference)
        }
        extra = orphans(session) if reference is None else []
    findings = (
        doubts
        + checked.broken()
        + [missing_finding(r, s) for r, s in sorted(missing.items())]
        + extra
    )
    if record and (reference is None or findings or checked.findings):
        with ledger.transaction() as session:
            record_findings(
                session,
                checked=checked,
                missing=missing,
                doubts=doubts,
                now=now,
                found_by=found_by,
            )
    return Audit(
        findings=findings,
        cases=len(checked.findings),
        checkpoint=compared,
        source=source,
        not_compared=checked.not_compared,
        notes=notes,
    )
