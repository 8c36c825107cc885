class DistillError(Exception):
    """A failure with a message meant for the user (printed as one line, exit 1). `everywhere`:
    every torchrun process raises it alike (a bad option), so process 0 alone prints it."""

    def __init__(self, message: str, everywhere: bool = False):
        super().__init__(message)
        self.everywhere = everywhere
