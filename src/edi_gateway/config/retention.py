"""The ``retention:`` section of gateway.yaml: the daemon purges what finished long ago.

Without the section nothing is ever purged automatically (``edi-gateway purge`` still works).
With it, ``edi-gateway run`` purges, every ``every_hours``, what finished more than
``after_days`` ago, into an archive file in ``archive_dir`` (docs/adr/0037, store/purge.py).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edi_gateway.config.base import ConfigPath, _Model

__all__ = ["RetentionSettings"]


class RetentionSettings(_Model):
    """What the daemon purges, when, and where it keeps the archive."""

    after_days: int = Field(ge=1, le=36500)
    """Finished orders and dismissed messages whose last activity is older than this go."""
    archive_dir: ConfigPath | None = None
    """Where each purge writes its archive (``purge-<run>-<time>.jsonl``, restorable with
    ``edi-gateway purge restore FILE``); relative to gateway.yaml's folder."""
    archive: bool = True
    """``false``: purge without an archive (what goes cannot be restored); then no
    ``archive_dir``."""
    every_hours: float = Field(default=24, gt=0, le=24 * 31)
    """How often the daemon looks (the first time when it starts)."""

    @model_validator(mode="after")
    def _archive_somewhere(self) -> RetentionSettings:
        if self.archive and self.archive_dir is None:
            raise ValueError(
                "retention needs archive_dir (where purged rows are archived), or archive: "
                "false to purge without an archive"
            )
        if not self.archive and self.archive_dir is not None:
            raise ValueError("found archive: false with an archive_dir; keep one of the two")
        return self
