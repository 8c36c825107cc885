# Stops this process when the activeflow process that started it is gone. `activeflow distill`
# runs us as a child; if it is killed (kill -9, OOM), nothing sends us a signal, and we would
# keep training and then write its output behind the user's back. The parent passes its pid in
# ACTIVEFLOW_PARENT_PID; when we are reparented, we send ourselves SIGINT, as Ctrl-C would (it
# also wakes a blocking call, which _thread.interrupt_main does not), so the KeyboardInterrupt
# removes the temporary files on the way out.
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

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=poll, name="activeflow-parent-watch", daemon=True).start()
