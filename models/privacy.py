"""Personal fields encrypted at rest: a random data key per case, wrapped by one master key.

The store seals the personal fields of every event it appends (`PERSONAL`, per event kind) as
`enc:v1:<base64 nonce+ciphertext>`, AES-256-GCM with the case reference and field name as
associated data, so a value cannot be moved to another case or field. An intake's free-text
fields are sealed together, as one value under `personal` (one encryption per registration, not
one per field); an intake sealed field by field, as before December 2026, opens all the same.
The hash chain covers the sealed text: erasing a case (destroying its key) leaves every chain
verifiable. Reads that show a case to someone allowed to see it open the fields
(`CaseKeys.reveal`); nothing else does.

The master key: $ROGATORY_MASTER_KEY (base64 of 32 bytes), else the Prefect Secret block named
by $ROGATORY_MASTER_KEY_SECRET, else the file $ROGATORY_VAR/master.key, created on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import CommandRejected, KeyUnavailable
from models.ledger import CaseKey, dumps
from models.secrets import secret_text
from models.var import private_folder

MASTER_KEY_VARIABLE = "ROGATORY_MASTER_KEY"
MASTER_SECRET_VARIABLE = "ROGATORY_MASTER_KEY_SECRET"
TAG = "enc:v1:"
ERASED = "[erased]"
SYNTHETIC_KEY = "rogatory.synthetic"
"""Session flag set by the simulator: its made-up cases get keys and nonces derived from the
master key (keyed BLAKE2b), so the same seed writes the same ledger byte for byte. Never for
real data."""

PERSONAL_KEY = "personal"
"""The key under which a sealed intake keeps its free-text fields, sealed as one value."""
INTAKE_PERSONAL = (
    "urgency_reason",
    "requesting_authority",
    "conducting_authority",
    "subject",
    "facts_summary",
    "assistance_sought",
    "procedure",
    "persons",
    "purpose",
    "assets",
)
"""The intake's free text (UNCAC 46(15) (a)-(f), assets); routing fields, dates, country codes,
categories and the registers' reference codes stay in clear: routes, reports and searches use
them."""

PERSONAL: dict[str, tuple[str, ...]] = {
    "registered": ("intake",),
    "decided": ("note",),
    "resubmitted": ("note",),
    "clock_stopped": ("reason",),
    "clock_resumed": ("reason",),
    "reassigned": ("note",),
    "withdrawn": ("note",),
    "prescription_event": ("note",),
    "hop_assigned": ("note",),
    "document_attached": ("filename", "note"),
    "escalation_acknowledged": ("note",),
    "escalation_snoozed": ("reason",),
    "deadline_event": ("reasons",),
}
"""The payload fields of each event kind that may name a person; `intake` means its
INTAKE_PERSONAL fields."""


def _unb64(text: str, *, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyUnavailable(
            f"{where} is not a master key: give base64 of 32 random bytes, e.g. "
            "`python -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'`"
        )
    return key


def _secret_key(name: str) -> bytes:
    text = secret_text(
        name,
        variable=MASTER_SECRET_VARIABLE,
        holds="the master key (base64 of 32 bytes)",
        fix=f"Create it with `Secret(value=<base64 of 32 random bytes>).save({name!r})`, or set "
        f"${MASTER_KEY_VARIABLE}",
        error=KeyUnavailable,
    )
    return _unb64(text, where=f"the Prefect Secret block {name!r}")


def _file_key(path: Path) -> bytes:
    if not path.exists():
        # Written whole under a temporary name, then linked into place: a process starting at
        # the same moment finds no key or the whole key, never half of one, and one key wins.
        private_folder(path.parent)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(32)).decode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            print(
                f"rogatory: created the master key {path}; production keeps it outside var/ "
                f"(${MASTER_KEY_VARIABLE} or ${MASTER_SECRET_VARIABLE})",
                file=sys.stderr,
            )
        finally:
            temp.unlink()
    return _unb64(path.read_text(), where=str(path))


@lru_cache(maxsize=4)
def _master(env: str, secret: str, var: str) -> bytes:
    if env:
        return _unb64(env, where=f"${MASTER_KEY_VARIABLE}")
    if secret:
        return _secret_key(secret)
    return _file_key(Path(var) / "master.key")


def master_key() -> bytes:
    """The key that wraps every case key (see the module docstring for where it comes from)."""
    return _master(
        os.environ.get(MASTER_KEY_VARIABLE, "").strip(),
        os.environ.get(MASTER_SECRET_VARIABLE, "").strip(),
        os.environ.get("ROGATORY_VAR", "var"),
    )


def _aad(reference: str, name: str) -> bytes:
    return f"{reference}\x00{name}".encode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TAG)


@dataclass
class CaseKeys:
    """The case keys one transaction has used; new ones are written with its flush."""

    session: Session
    keys: dict[str, AESGCM | None] = field(default_factory=dict)
    """Reference -> cipher; None for an erased case."""
    new: list[dict[str, Any]] = field(default_factory=list)
    _fresh: set[str] = field(default_factory=set)
    _master: bytes | None = None

    def fresh(self, reference: str) -> None:
        """`reference` is a case this transaction registers: it has no key yet, so the first
        sealing makes one without asking the ledger (a look-up per new case cost the bulk
        paths, the simulator and imports, a fifth of their time)."""
        self._fresh.add(reference)

    def _cipher(self, reference: str, *, create_at: datetime | None) -> AESGCM | None:
        if reference in self.keys:
            return self.keys[reference]
        if reference in self._fresh and create_at is not None:
            self._fresh.discard(reference)
            return self._create(reference, create_at)
        row = self.session.execute(
            select(CaseKey.wrapped, CaseKey.erased_at).where(CaseKey.reference == reference)
        ).first()
        cipher: AESGCM | None
        if row is not None:
            cipher = None if row.wrapped is None else AESGCM(self._unwrap(row.wrapped, reference))
        elif create_at is None:
            return None
        else:
            return self._create(reference, create_at)
        self.keys[reference] = cipher
        return cipher

    def _create(self, reference: str, at: datetime) -> AESGCM:
        """A new case key, kept wrapped with the transaction's writes."""
        key = (
            self._derived(b"case key", reference.encode())
            if self.synthetic
            else AESGCM.generate_key(bit_length=256)
        )
        wrapped = base64.b64encode(aes_key_wrap(self.master, key)).decode()
        self.new.append({"reference": reference, "wrapped": wrapped, "created_at": at})
        cipher = AESGCM(key)
        self.keys[reference] = cipher
        return cipher

    @property
    def synthetic(self) -> bool:
        return bool(self.session.info.get(SYNTHETIC_KEY, False))

    @property
    def master(self) -> bytes:
        """The master key, found once per transaction (the bulk paths make thousands of keys)."""
        if self._master is None:
            self._master = master_key()
        return self._master

    def _derived(self, label: bytes, data: bytes, size: int = 32) -> bytes:
        """A keyed BLAKE2b of `data`: one call, where HMAC-SHA256 took four (the simulator
        derives a nonce for every sealed value)."""
        return hashlib.blake2b(data, digest_size=size, key=self.master, person=label[:16]).digest()

    def _unwrap(self, wrapped: str, reference: str) -> bytes:
        try:
            return aes_key_unwrap(self.master, base64.b64decode(wrapped))
        except (InvalidUnwrap, binascii.Error) as exc:
            raise KeyUnavailable(
                f"the key of {reference} does not open with this master key: is "
                f"${MASTER_KEY_VARIABLE} (or the key file) the one this ledger was written with?"
            ) from exc

    # -- sealing -------------------------------------------------------------------------------

    def seal(
        self, reference: str, kind: str, payload: dict[str, Any], *, at: datetime
    ) -> dict[str, Any]:
        """`payload` with the personal fields of event `kind` sealed (a new dict if any)."""
        names = PERSONAL.get(kind)
        if not names:
            return payload
        out = dict(payload)
        for name in names:
            value = out.get(name)
            if value is None:
                continue
            if name == "intake" and isinstance(value, dict):
                out[name] = self._seal_intake(reference, value, at=at)
            else:
                out[name] = self._seal_value(reference, name, value, at=at)
        return out

    def _seal_intake(
        self, reference: str, intake: dict[str, Any], *, at: datetime
    ) -> dict[str, Any]:
        """The intake with its non-empty free-text fields sealed together under `personal`."""
        personal = {
            k: v for k, v in intake.items() if k in INTAKE_PERSONAL and v not in (None, [], "")
        }
        if not personal:
            return intake
        kept = {k: v for k, v in intake.items() if k not in personal}
        kept[PERSONAL_KEY] = self._seal_value(reference, "intake", personal, at=at)
        return kept

    def _seal_value(self, reference: str, name: str, value: Any, *, at: datetime) -> str:
        cipher = self._cipher(reference, create_at=at)
        if cipher is None:
            raise CommandRejected(
                f"{reference} has been erased: no personal text can be added to it",
                reference=reference,
            )
        text, aad = dumps(value).encode(), _aad(reference, name)
        nonce = (
            self._derived(b"nonce", aad + b"\x00" + text, 12) if self.synthetic else os.urandom(12)
        )
        sealed = cipher.encrypt(nonce, text, aad)
        return TAG + base64.b64encode(nonce + sealed).decode()

    # -- opening -------------------------------------------------------------------------------

    def open_value(self, reference: str, name: str, value: Any) -> Any:
        """A sealed value in clear, "[erased]" if its case key is gone; others unchanged."""
        if not is_sealed(value):
            return value
        cipher = self._cipher(reference, create_at=None)
        if cipher is None:
            return ERASED
        raw = base64.b64decode(value[len(TAG) :])
        try:
            return json.loads(cipher.decrypt(raw[:12], raw[12:], _aad(reference, name)))
        except InvalidTag:
            return "[unreadable]"

    def reveal(self, reference: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An event's payload with its personal fields opened (for a caller who may see it)."""
        names = PERSONAL.get(kind)
        if not names:
            return payload
        out = dict(payload)
        for name in names:
            value = out.get(name)
            if name == "intake" and isinstance(value, dict):
                out[name] = self.reveal_intake(reference, value)
            elif value is not None:
                out[name] = self.open_value(reference, name, value)
        return out

    def reveal_intake(self, reference: str, intake: dict[str, Any]) -> dict[str, Any]:
        """The intake in clear; once erased, `personal` reads "[erased]" (fields sealed one by
        one, as before December 2026, each read so)."""
        out = {
            k: self.open_value(reference, f"intake.{k}", v)
            for k, v in intake.items()
            if k != PERSONAL_KEY
        }
        if PERSONAL_KEY in intake:
            opened = self.open_value(reference, "intake", intake[PERSONAL_KEY])
            if isinstance(opened, dict):
                out.update(opened)
            else:
                out[PERSONAL_KEY] = opened
        return out
