"""`rogatory audit verify|checkpoint|keygen`, `rogatory backup DEST` and `rogatory restore SRC`.

verify     every case's chain, stored head and projections against its events, and the ledger
           against its latest checkpoint (the witness file's, when one is configured); exit 1
           naming everything that does not verify, each such case marked (commands refused)
           and told once to the admin and the auditors
checkpoint what a sweep ends with: verify the cases that moved, seal and sign a checkpoint
keygen     create the Ed25519 checkpoint key ($ROGATORY_CHECKPOINT_KEY), mode 0600
backup     a consistent copy of the running ledger and its documents, with a manifest
restore    into an empty place, then verify it; exit 1 unless everything verifies
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.cli import emit

Sub = Any  # argparse's private _SubParsersAction


def register(sub: Sub) -> None:
    p = sub.add_parser("audit", help="check the ledger; seal and sign checkpoints")
    a = p.add_subparsers(metavar="ACTION")
    v = a.add_parser(
        "verify",
        help="chains, projections and the latest checkpoint; exit 1 naming all that differs",
    )
    v.add_argument("--reference", help="only this case")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=audit_verify)
    c = a.add_parser("checkpoint", help="verify what moved and seal a signed checkpoint now")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=audit_checkpoint)
    k = a.add_parser("keygen", help="create the checkpoint signing key ($ROGATORY_CHECKPOINT_KEY)")
    k.add_argument("--path", help="where to create it (default: $ROGATORY_CHECKPOINT_KEY)")
    k.set_defaults(handler=audit_keygen)
    b = sub.add_parser("backup", help="copy the running ledger and its documents into DEST")
    b.add_argument("destination", metavar="DEST", help="a new, empty folder")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=backup)
    r = sub.add_parser(
        "restore", help="load a backup into an empty ledger, then verify it (exit 1 if not)"
    )
    r.add_argument("source", metavar="SRC", help="a folder `rogatory backup` wrote")
    r.add_argument(
        "--to", help="the empty ledger to restore into (default: $ROGATORY_DATABASE_URL)"
    )
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=restore)


def _url(ledger: Any) -> str:
    return str(ledger.engine.url.render_as_string(hide_password=True))


def audit_verify(args: argparse.Namespace) -> int:
    from models import documents
    from models.checkpoints import Witness, audit, verifier_from_env
    from models.clock import clock_from_env
    from models.engine import Routings
    from models.ledger import Ledger
    from tasks.checkpoint import checkpoint_signer

    with Ledger() as ledger:
        url = _url(ledger)
        verifier = verifier_from_env(checkpoint_signer(ledger_url=url, create=False))
        found = audit(
            ledger,
            routings=Routings({}),
            verifier=verifier,
            witness=Witness.from_env(ledger_url=url),
            reference=args.reference,
            now=clock_from_env().now(),
        )
        broken: list[Any] = [f.as_json() for f in found.findings]
        lines = [f"BROKEN {f}" for f in found.findings]
        with ledger.session() as session:
            # Each attached document's bytes must still hash to what its event recorded.
            if documents.any_attached(session):
                store = documents.DocumentStore(documents.documents_root(ledger.engine.url))
                lost = documents.problems(session, store=store, reference=args.reference)
                broken += [asdict(p) for p in lost]
                lines += [f"BROKEN {p}" for p in lost]
    if not args.json:
        for note in _notes(found):
            print(f"note: {note}", file=sys.stderr)
    if broken:
        emit(args, broken, "\n".join(lines))
        return 1
    emit(args, [], "ledger intact: every event hash checks out")
    return 0


def _notes(found: Any) -> list[str]:
    from models.replay import SKIPPED

    notes = [
        f"{found.cases} case(s): chains, stored heads and projections rebuilt from their events "
        f"(not compared, as no event determines them: {', '.join(SKIPPED)})"
    ]
    if found.checkpoint is not None:
        at = found.checkpoint.get("at")
        notes.append(
            f"held to checkpoint {found.checkpoint['checkpoint']} of {at} "
            f"({found.checkpoint['cases']} cases, root {found.checkpoint['root'][:16]}...), "
            f"read from {found.source}"
        )
    else:
        notes.append("no checkpoint yet: a sweep or `rogatory audit checkpoint` seals one")
    for reference, why in sorted(found.not_compared.items())[:5]:
        notes.append(f"{reference}: projections not compared ({why})")
    return notes + list(found.notes)


def audit_checkpoint(args: argparse.Namespace) -> int:
    from models.clock import clock_from_env
    from models.engine import Routings
    from models.ledger import Ledger
    from tasks.checkpoint import seal_now

    with Ledger() as ledger:
        done = seal_now(
            ledger,
            routings=Routings({}),
            now=clock_from_env().now(),
            found_by="rogatory audit checkpoint",
        )
    summary = {
        "checkpoint": done.checkpoint,
        "cases": done.cases,
        "root": done.root,
        "signed": done.signed,
        "witnessed": done.witnessed,
        "verified": done.verified,
        "sealed": done.sealed,
        "findings": [f.as_json() for f in done.findings],
        "skipped": done.skipped or None,
    }
    if done.checkpoint is None:
        text = f"no checkpoint: {done.skipped}"
    else:
        signed = "signed" if done.signed else "UNSIGNED (no key: set $ROGATORY_CHECKPOINT_KEY)"
        witnessed = (
            f"witnessed (line {done.witnessed[-1]})"
            if done.witnessed
            else "not witnessed (no $ROGATORY_WITNESS)"
        )
        text = (
            f"checkpoint {done.checkpoint}: {done.cases} cases, root {done.root}, {signed}, "
            f"{witnessed}; {done.verified} case(s) verified, {done.sealed} head(s) sealed anew"
        )
    text += "".join(f"\nBROKEN {f}" for f in done.findings)
    emit(args, summary, text)
    return 1 if done.findings or done.checkpoint is None else 0


def audit_keygen(args: argparse.Namespace) -> int:
    import os

    from models.checkpoints import KEY_VARIABLE, create_key, outside_ledger
    from models.errors import RogatoryError
    from models.ledger import database_url

    raw = args.path or os.environ.get(KEY_VARIABLE, "").strip()
    if not raw:
        raise RogatoryError(f"give --path or set ${KEY_VARIABLE}: where the key is to be kept")
    path = outside_ledger(
        Path(raw), ledger_url=database_url(), what="the checkpoint key", variable=KEY_VARIABLE
    )
    signer = create_key(path)
    print(f"created {path} (mode 600) and {path}.pub")
    print(f"public key: {signer.verifier.raw.hex()} (key id {signer.verifier.key_id})")
    print(
        "Give the public key to the auditors; keep the key file off the database host's "
        "backups, or move its text into a Prefect Secret block ($ROGATORY_CHECKPOINT_KEY_SECRET)"
    )
    return 0


def backup(args: argparse.Namespace) -> int:
    from models import documents
    from models.backup import backup as copy
    from models.clock import clock_from_env
    from models.errors import RogatoryError
    from models.ledger import Ledger

    with Ledger() as ledger:
        try:
            folder: Path | None = documents.documents_root(ledger.engine.url)
        except RogatoryError:
            folder = None
        made = copy(ledger, Path(args.destination), documents=folder, now=clock_from_env().now())
    data = made.data
    checkpoint = data.get("checkpoint")
    said = (
        f"checkpoint {checkpoint['checkpoint']} ({checkpoint['at']})"
        if checkpoint
        else "no checkpoint (a sweep seals one)"
    )
    cases = "?" if data["cases"] is None else f"{data['cases']:,}"
    emit(
        args,
        data,
        f"backed up {cases} cases, {data['events'] or 0:,} events, {data['documents']} "
        f"document file(s) and {said} into {args.destination}",
    )
    return 0


def restore(args: argparse.Namespace) -> int:
    import os

    from models import documents
    from models.backup import restore as load
    from models.checkpoints import verifier_from_env
    from models.clock import clock_from_env
    from models.engine import Routings
    from models.ledger import database_url
    from tasks.checkpoint import checkpoint_signer

    url = args.to or database_url()
    folder = None
    if os.environ.get("ROGATORY_DOCUMENTS") or url.startswith("sqlite"):
        folder = documents.documents_root(url)
    done = load(
        Path(args.source),
        url,
        documents=folder,
        routings=Routings({}),
        verifier=verifier_from_env(checkpoint_signer(ledger_url=url, create=False)),
        now=clock_from_env().now(),
    )
    problems = done.problems
    checkpoint = done.checkpoint
    summary = {
        "restored": args.source,
        "cases": done.audit.cases,
        "checkpoint": checkpoint,
        "problems": problems,
        "notes": done.audit.notes,
    }
    if problems:
        emit(
            args,
            summary,
            "restored, but it does not verify:\n" + "\n".join(f"BROKEN {p}" for p in problems),
        )
        return 1
    said = (
        f"checkpoint {checkpoint['checkpoint']} ({checkpoint['cases']} cases) verified"
        if checkpoint
        else "no checkpoint in the backup"
    )
    emit(
        args,
        summary,
        f"restored {done.audit.cases:,} cases from {args.source}: every chain and projection "
        f"verifies; {said}",
    )
    return 0
