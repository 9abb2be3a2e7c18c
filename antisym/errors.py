"""Errors the user can fix by changing a setting or a file: the CLI prints them as one paragraph, no traceback."""


class UserError(Exception):
    """Bad input (a config value, a data folder, a checkpoint path); the message says what to change."""

    recorded = False  # True once the run it stopped had started training and wrote its record: not a refusal


class ConfigError(UserError, ValueError):
    """A config value the equations, the data or the optimizer cannot take."""


class DataError(UserError, RuntimeError):
    """The data folder is missing, incomplete or corrupt; the message says which files and how to fix it."""


class CheckpointError(UserError, FileNotFoundError):
    """trainer.resume names a checkpoint that is not there."""


class RunDirError(UserError, OSError):
    """A run directory's files cannot be written (read-only, a full disk); what is on disk stays consistent."""
