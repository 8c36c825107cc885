# Stops this process when the activeflow process that started it is gone. `activeflow distill`
# runs us as a child; if it is killed (kill -9, OOM), nothing sends us a signal, and we would
# keep training and then write its output behind the user's back. The parent passes its pid in
# ACTIVEFLOW_PARENT_PID; when we are reparented (under torchrun: when that process is gone), we
# send ourselves SIGINT, as Ctrl-C would (it also wakes a blocking call, which
# _thread.interrupt_main does not), so the KeyboardInterrupt removes the temporary files on the
# way out.
from __future__ import annotations

import os
import signal
import threading
import time

POLL_SECONDS = 0.2


def watch_parent(env=os.environ) -> None:
    pid = env.get("ACTIVEFLOW_PARENT_PID", "")
    if not pid.isdigit():
        return
    parent = int(pid)
    # Under torchrun (--procs > 1) our parent is torchrun, the activeflow process its parent:
    # there we watch that process itself, whose pid stays its own while it lives.
    direct = os.getppid() == parent

    def alive() -> bool:
        if direct:
            return os.getppid() == parent
        return _running(parent)

    def poll() -> None:
        while alive():
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=poll, name="activeflow-parent-watch", daemon=True).start()


def _running(pid: int) -> bool:
    """Whether process `pid` runs: a zombie nobody has reaped yet has exited too."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc: ask the kernel
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
