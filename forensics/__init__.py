"""forensics: find the line of a Go service that leaks database or network connections,
from a capture bundle alone."""

__version__ = "0.1.0"
