"""The errors keel raises: one hierarchy, each naming the file, column or rows concerned."""

from __future__ import annotations


class KeelError(Exception):
    """Base of every error keel raises on purpose; the CLI turns it into exit code 2."""


class DataError(KeelError):
    """Input data that cannot be read or used: an empty file, an unknown format, no rows."""


class SchemaError(KeelError):
    """A column that is missing, of the wrong type, or given a role it cannot take."""


class FormatError(KeelError):
    """A keel file (profile or baseline) that is truncated, corrupted or from a newer format."""


class ConfigError(KeelError):
    """An option or method that does not exist or does not fit the column it is asked for."""


class StoreError(KeelError):
    """The results store cannot be reached, or holds a schema this keel cannot read."""


class MonitorBusy(KeelError):
    """Another run of the same monitor holds its lock; this run did nothing."""


class DeliveryError(KeelError):
    """A channel did not take a notification (down, refusing, too slow)."""
