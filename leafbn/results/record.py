"""A study's ``config.json`` as one record: what was run, on what data, with what, and how it went.

The study writes it (:mod:`leafbn.tuning.runner`, through :mod:`leafbn.tuning.storage`) and the report
reads it (:func:`leafbn.results.tables.load_tables`); both hold a :class:`StudyRecord`, never the loose
JSON. A part missing from an old or hand-edited file reads as empty, so readers ask for fields, not types.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StudyRecord"]


@dataclass
class StudyRecord:
    """``config.json``: ``study`` (every :class:`leafbn.config.StudyConfig` field), ``data`` (source,
    rows, classes, features, sha256), ``versions`` (package → version, and the code's commit, of the
    session that started the study), ``run`` (started, finished, wall_time_s, trials_expected,
    trials_finished, ...; see docs/results.md) and ``resumes`` (one ``{"started", "versions"}`` per
    later session, in order; empty in a study never resumed, or written before resumes were kept)."""

    study: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    resumes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, values: Any) -> StudyRecord:
        """The record of a parsed ``config.json``; a part that is missing or of another type is empty."""
        values = values if isinstance(values, dict) else {}
        parts = {name: values.get(name) for name in ("study", "data", "versions", "run")}
        record = cls(**{name: dict(part) if isinstance(part, dict) else {} for name, part in parts.items()})
        resumes = values.get("resumes")
        record.resumes = [r for r in resumes if isinstance(r, dict)] if isinstance(resumes, list) else []
        return record

    @classmethod
    def read(cls, path: Path) -> StudyRecord:
        """Read ``path``, a ``config.json`` (the one reader of it); raises ``OSError``, or ``ValueError``
        when it is not JSON or not a JSON object, for the caller to word."""
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON object")
        return cls.from_dict(loaded)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over ``path``): a crash never leaves half a file."""
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        tmp.replace(path)

    def __bool__(self) -> bool:
        return any((self.study, self.data, self.versions, self.run))
