"""A string type for tokens and passwords that never prints itself."""

from __future__ import annotations


class Secret(str):
    """A secret value: equal to its text, but shown as ``***`` everywhere."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def reveal(self) -> str:
        """The real text, for an HTTP header and nowhere else."""
        return str.__str__(self)
