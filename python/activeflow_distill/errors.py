class DistillError(Exception):
    """A failure with a message meant for the user (printed as one line, exit 1)."""
