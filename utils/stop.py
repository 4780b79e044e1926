"""Stop a training run cleanly on SIGTERM or Ctrl-C: finish the step, save, exit.

Clusters send SIGTERM before they preempt or time out a job; without a handler the run loses
everything since its last end-of-epoch checkpoint. ``GracefulStop`` only records the signal; the
training loop looks at ``requested`` after each step, writes a resumable checkpoint and returns.
A second signal gets the default behaviour (stop at once), so an impatient Ctrl-C still works.

The other entry points (demo.py, test.py, restore_onnx.py, export.py, the scripts) have no
step to finish: ``run_interruptible`` ends them on Ctrl-C with one line and exit code 130, as
training ends, instead of a traceback. Their outputs are written whole or not at all
(``utils.paths.write_atomic``), so what an interrupted run leaves never looks complete.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: what a shell reports for a command Ctrl-C stopped


def run_interruptible(main: Callable[[], int], left: Callable[[], str] | None = None) -> int:
    """``main()``'s exit code; on Ctrl-C, one line instead of a traceback, and 130.

    ``left``, when given, is asked after the interruption what the run leaves behind (e.g.
    where the rows scored so far are); it goes at the end of the line.
    """
    try:
        return main()
    except KeyboardInterrupt:
        logger.error("interrupted (Ctrl-C)%s", f": {left()}" if left else "")
        return EXIT_INTERRUPTED


class GracefulStop:
    """Context manager: while active, SIGTERM/SIGINT set ``requested`` to the signal's name.

    Handlers can only be installed from the main thread; elsewhere (e.g. a test runner's
    worker thread) it does nothing and ``requested`` stays None.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signal.Signals(signum).name
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))  # next one: at once
        logger.warning(
            "%s: stopping after this step and saving a resumable checkpoint "
            "(send it again to stop at once)",
            self.requested,
        )

    @property
    def signum(self) -> int:
        """Number of the requested signal, 0 if none."""
        return signal.Signals[self.requested].value if self.requested else 0
