"""The per-tick logic of the modal operators that run a subprocess, as a plain class.

Modal operators and timers never run in the ``bpy`` module, so ``modal()`` only forwards
to ``ModalJob.tick(context, event)``, which tests call with the real ``bpy.context`` and a
stand-in event (``type``, ``value``). A ModalJob drives anything with ``poll()``,
``finished()``, ``cancel()`` and ``wait()``: the pipeline and download ``EventJob`` and the
environment install. Each tick: Esc (or the Cancel button) ends the job and reports the
cancellation; a timer tick drains the job's events and shows progress in the status bar;
once the job ended, ``finish`` turns it into the operator's result and reports.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

RUNNING_MODAL = "RUNNING_MODAL"
PASS_THROUGH = "PASS_THROUGH"
FINISHED = "FINISHED"
CANCELLED = "CANCELLED"
# (level, message) as ``Operator.report`` takes them: ``("ERROR", "…")``.
Report = tuple[str, str]


class RunningJob(Protocol):
    def poll(self) -> list: ...
    def finished(self) -> bool: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> object: ...


@dataclass(frozen=True)
class TickResult:
    """What ``modal`` returns (``status``) and the reports it makes first."""

    status: str
    reports: tuple[Report, ...] = ()

    @property
    def ended(self) -> bool:
        return self.status in (FINISHED, CANCELLED)

    @classmethod
    def finished(cls, *reports: Report) -> "TickResult":
        return cls(FINISHED, reports)

    @classmethod
    def cancelled(cls, *reports: Report) -> "TickResult":
        return cls(CANCELLED, reports)


class JobSlot:
    """The one job of a kind in flight (panels show it, Cancel flags it), and the message
    the last one ended with."""

    def __init__(self) -> None:
        self.current: ModalJob | None = None
        self.last_message = ""

    @property
    def busy(self) -> bool:
        return self.current is not None


class ModalJob:
    """One running job, its progress line, and how it ends.

    status_line(job) -> str: the status bar text; finish(context, job) -> TickResult once
    the job ended on its own; cancelled_report: the warning after Esc or Cancel.
    """

    def __init__(
        self,
        job: RunningJob,
        slot: JobSlot,
        status_line: Callable[[RunningJob], str],
        finish: Callable[[object, RunningJob], TickResult],
        cancelled_report: str,
    ) -> None:
        self.job = job
        self.slot = slot
        self._status_line = status_line
        self._finish = finish
        self.cancelled_report = cancelled_report
        self.cancel_requested = False

    def status_line(self) -> str:
        return self._status_line(self.job)

    def begin(self, context) -> None:
        """Take the slot and show the first status line."""
        if self.slot.current is not None and self.slot.current is not self:
            raise RuntimeError("Another job of this kind is running.")
        self.slot.current = self
        self.slot.last_message = ""
        _set_status(context, self.status_line())
        redraw_all(context)

    def request_cancel(self) -> None:
        """Cancel at the next tick (what the Cancel buttons do)."""
        self.cancel_requested = True

    def tick(self, context, event) -> TickResult:
        """One modal event: see the module docstring."""
        if self.cancel_requested or (event.type == "ESC" and event.value == "PRESS"):
            self.job.cancel()
            self.job.wait()
            return self._end(context, TickResult.cancelled(("WARNING", self.cancelled_report)))
        if event.type != "TIMER":
            return TickResult(PASS_THROUGH)
        self.job.poll()
        if not self.job.finished():
            _set_status(context, self.status_line())
            redraw_all(context)
            return TickResult(RUNNING_MODAL)
        return self._end(context, self._finish(context, self.job))

    def run_to_end(self, context) -> TickResult:
        """Block until the job ends and finish it (``execute``: scripts, background mode)."""
        self.job.wait()
        return self._finish(context, self.job)

    def _end(self, context, result: TickResult) -> TickResult:
        _set_status(context, None)
        if self.slot.current is self:
            self.slot.current = None
        if result.reports:
            self.slot.last_message = result.reports[-1][1]
        redraw_all(context)
        return result


def apply_tick(operator, context, result: TickResult) -> set[str]:
    """Make ``result``'s reports on ``operator``; remove its timer once the job ended."""
    for level, message in result.reports:
        operator.report({level}, message)
    timer = getattr(operator, "_timer", None)
    if result.ended and timer is not None:
        context.window_manager.event_timer_remove(timer)
        operator._timer = None
    return {result.status}


def start_modal(operator, context, modal_job: ModalJob, interval_s: float) -> set[str]:
    """``invoke``'s end: show the job, add the timer and the modal handler."""
    modal_job.begin(context)
    operator._timer = context.window_manager.event_timer_add(interval_s, window=context.window)
    context.window_manager.modal_handler_add(operator)
    return {RUNNING_MODAL}


class ModalJobOperator:
    """Mixin for an operator that runs one ``ModalJob``: ``execute`` runs it to the end
    (scripts, background mode), ``invoke`` + ``modal`` tick it from a timer (the UI).

    The operator supplies ``start_job(context) -> ModalJob | None`` (None after it reported
    why nothing started) and may set ``modal_interval_s``.
    """

    modal_interval_s = 0.2
    _timer = None
    _modal_job = None

    def start_job(self, context) -> ModalJob | None:
        raise NotImplementedError

    def execute(self, context):
        """Blocking run, for scripts and background mode."""
        modal_job = self.start_job(context)
        if modal_job is None:
            return {"CANCELLED"}
        return apply_tick(self, context, modal_job.run_to_end(context))

    def invoke(self, context, event):
        self._modal_job = self.start_job(context)
        if self._modal_job is None:
            return {"CANCELLED"}
        return start_modal(self, context, self._modal_job, interval_s=self.modal_interval_s)

    def modal(self, context, event):
        return apply_tick(self, context, self._modal_job.tick(context, event))


def redraw_all(context) -> None:
    """Redraw every area, so panels and preferences show the progress."""
    window_manager = context.window_manager
    if window_manager is None:
        return
    for window in window_manager.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            area.tag_redraw()


def _set_status(context, text: str | None) -> None:
    workspace = context.workspace
    if workspace is not None:
        workspace.status_text_set(text)
