"""The application: settings, the CLI and the composition root (``container``)."""
