"""One progress argument for every audit: None/False, True (a tqdm bar), a callable, or an operator context.

Every audit takes ``progress=`` and passes it to :func:`make_progress`, which returns a
:class:`Progress` with one method, ``report(fraction, label)``. What the caller may pass:

- ``None`` / ``False``: nothing is shown;
- ``True``: a tqdm bar in percent (terminal or notebook);
- a callable ``progress(fraction, label)`` (fraction in 0..1);
- an object with ``set_progress(progress=..., label=...)``: a FiftyOne operator's ``ctx``, so an
  operator passes ``progress=ctx`` and a delegated run shows its progress in the App.

Example:
    >>> seen = []
    >>> p = make_progress(lambda f, label: seen.append((f, label)), desc="dups")
    >>> p.report(0.5, "half"); p.close()
    >>> seen
    [(0.5, 'half'), (1.0, 'done')]
    >>> make_progress(None).report(0.3, "ignored")  # no output
"""
from __future__ import annotations

from typing import Any, Callable


class Progress:
    """``report(fraction, label)`` forwarded to a sink; ``close()`` reports 1.0 "done" once."""

    def __init__(self, sink: Callable[[float, str], None] | None, closer: Callable[[], None] | None = None):
        self._sink = sink
        self._closer = closer
        self._closed = False

    def report(self, fraction: float, label: str = "") -> None:
        if self._sink is not None and not self._closed:
            self._sink(min(max(float(fraction), 0.0), 1.0), str(label))

    def close(self) -> None:
        if self._closed:
            return
        self.report(1.0, "done")
        self._closed = True
        if self._closer is not None:
            self._closer()


def make_progress(progress: Any = None, desc: str = "audit") -> Progress:
    """Normalise a user's ``progress`` argument (see the module docstring) to a :class:`Progress`."""
    if progress is None or progress is False:
        return Progress(None)
    if isinstance(progress, Progress):
        return progress
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=100, desc=desc, unit="%")

        def to_bar(fraction: float, label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(int(round(100 * fraction)) - bar.n)

        return Progress(to_bar, bar.close)
    set_progress = getattr(progress, "set_progress", None)
    if callable(set_progress):  # a FiftyOne ExecutionContext
        return Progress(lambda fraction, label: set_progress(progress=fraction, label=label))
    if callable(progress):
        return Progress(progress)
    raise TypeError(f"progress must be None, a bool, a callable(fraction, label) or an operator context; "
                    f"got {type(progress).__name__}")
