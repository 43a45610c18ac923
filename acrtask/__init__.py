"""acrtask: the base-image-update trigger of ACR Tasks, for any registry."""

__version__ = "0.1.0"
