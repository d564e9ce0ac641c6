"""File primitives every layer shares: content digests, canonical JSON, atomic writes, JSON text read.

Every file the project writes for another process or a later run goes through
`write_atomic`: a reader sees the old bytes or the new ones, never half of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ContractError

CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_path(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside `dest` to fill (in this process or another); on success it is
    fsynced, given `mode` and renamed over `dest`; on any error it is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(dest: Path, mode: int = 0o644, text: bool = False) -> Iterator[IO[Any]]:
    """A handle whose content replaces `dest` (fsynced, with `mode`) only if the block succeeds."""
    with atomic_path(dest, mode) as tmp, open(tmp, "w" if text else "wb") as handle:
        yield handle


def write_atomic(dest: Path, data: bytes | str, mode: int = 0o644) -> None:
    with atomic_output(dest, mode, text=isinstance(data, str)) as handle:
        handle.write(data)


def write_json_atomic(dest: Path, data: Any) -> None:
    write_atomic(dest, json.dumps(data, sort_keys=True, indent=1))


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is missing or not valid JSON (a torn or foreign file)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def json_from_text(text: str, where: str) -> Any:
    """Parsed JSON text (a file or a variable another process wrote); text that is not JSON is
    one ContractError line naming `where`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
