"""The names of review decisions and queue states, defined once (the CLI, plugin and panel import them)."""
from __future__ import annotations

#: What a reviewer can set on a queue row: a real error to relabel, reviewed and right, fixed.
REVIEW_STATES = ("confirmed", "not_an_error", "fixed")
#: What the queue shows: no decision yet, a decision still valid for the label as it is now, or a
#: decision taken on a label that has changed since (see :func:`iou_audit.review.triage`).
QUEUE_STATES = ("open", "confirmed", "not_an_error", "fixed", "changed_since_review")
#: The default queue: what still needs a reviewer's eye or a relabel.
DEFAULT_QUEUE_STATES = ("open", "confirmed", "changed_since_review")
#: Label tags ``review:<state>`` (App sidebar "label tags"); audits only ever remove their own
#: ``<audit_key>:<kind>`` tags, so these survive re-running or deleting any audit.
TAG_PREFIX = "review:"
REVIEW_TAGS = tuple(TAG_PREFIX + s for s in REVIEW_STATES)
#: Per-sample int fields ``review_<state>``: how many of the sample's queue rows carry that decision.
COUNT_FIELDS = {s: f"review_{s}" for s in REVIEW_STATES}


def review_tag(state: str) -> str:
    """The label tag of a decision.

    Example:
        >>> review_tag("not_an_error")
        'review:not_an_error'
    """
    return TAG_PREFIX + check_state(state)


def check_state(state: str) -> str:
    """``state`` if it is one of :data:`REVIEW_STATES`, else a ValueError naming it.

    Example:
        >>> check_state("fixed")
        'fixed'
    """
    if state not in REVIEW_STATES:
        raise ValueError(f"review state must be one of {list(REVIEW_STATES)}, got {state!r}")
    return state


def check_queue_states(states) -> tuple[str, ...]:
    """The queue states asked for (a name or a list of names), each checked.

    Example:
        >>> check_queue_states("open"), check_queue_states(["open", "fixed"])
        (('open',), ('open', 'fixed'))
    """
    states = (states,) if isinstance(states, str) else tuple(states)
    bad = [s for s in states if s not in QUEUE_STATES]
    if bad:
        raise ValueError(f"queue states must be among {list(QUEUE_STATES)}, got {bad}")
    return states
