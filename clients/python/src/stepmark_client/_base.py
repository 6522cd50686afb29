"""What both transports share: pages of LIST, the iterators over them, wait() and final()."""
import time
from dataclasses import dataclass, field

from .errors import Timeout

# The states of a submission's latest job that end it (docs/protocol.md, STATUS).
JOB_ENDED = ("done", "dead", "cancelled")
# The final block's states, in order (docs/protocol.md, STATUS and RESULT).
FINAL_STATES = ("model_graded", "approved", "adjusted", "released")
REVIEWED = ("approved", "adjusted", "released")


@dataclass
class Submitted:
    """The reply to a submit: the submission's id, and whether the key was already known."""

    submission_id: int
    duplicate: bool


@dataclass
class Page:
    """One page of submissions of an assignment, as LIST (ZeroMQ) or the list route (HTTP)
    returns it. Store `next_cursor` to carry on later from where this page ended."""

    items: list
    next_cursor: str = None
    more: bool = False
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc):
        return cls(items=list(doc.get("items") or []), next_cursor=doc.get("next_cursor"),
                   more=bool(doc.get("more")), raw=doc)


class WaitTimeout(Timeout):
    """wait() ran out of time; `status` holds the last status seen."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def reached(status, until):
    """Whether a status (STATUS reply / GET submission) has reached `until`:
    "graded" (the job ended: done, dead or cancelled), "reviewed" (a teacher approved or
    adjusted it) or "released" (its feedback was released to the student). A dead or
    cancelled job ends every wait, since no grade will come."""
    state = status.get("state")
    if until == "graded":
        return state in JOB_ENDED
    if state in ("dead", "cancelled"):
        return True
    final = status.get("final") or {}
    want = REVIEWED if until == "reviewed" else ("released",)
    return final.get("state") in want


class ClientBase:
    """The transport-independent half. Subclasses provide status(), list()."""

    def final(self, submission_id):
        """The final block of a submission (state, score, max_score, reviewed_by, comment,
        released_at, ...), or None while it has no grading."""
        return self.status(submission_id).get("final")

    def iter_pages(self, course, assignment, cursor=None, updated_since=None, limit=None):
        """Every page of an assignment's submissions, from `cursor` (or `updated_since`, or
        the beginning). The last page yielded has more == False; its next_cursor is where the
        next sync starts."""
        while True:
            page = self.list(course, assignment, cursor=cursor, updated_since=updated_since,
                             limit=limit)
            yield page
            if not page.more or not page.next_cursor:
                return
            cursor, updated_since = page.next_cursor, None

    def iter_submissions(self, course, assignment, cursor=None, updated_since=None, limit=None):
        """Every submission of an assignment (changed since `cursor`), page after page."""
        for page in self.iter_pages(course, assignment, cursor, updated_since, limit):
            yield from page.items

    def wait(self, submission_id, until="graded", timeout=600.0, poll=1.0):
        """Polls the status until it reaches `until` ("graded", "reviewed" or "released";
        see reached()) and returns it; raises WaitTimeout after `timeout` seconds."""
        if until not in ("graded", "reviewed", "released"):
            raise ValueError(f"until must be graded, reviewed or released, not {until!r}")
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(submission_id)
            if reached(status, until):
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"submission {submission_id} not {until} after {timeout} s "
                                  f"(state {status.get('state')})", status)
            time.sleep(min(poll, left))
