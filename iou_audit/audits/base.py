"""The one shape of every audit: a frozen config dataclass, its kinds, and a pure compute's output.

An audit module defines
- ``KINDS``: the finding kinds it emits;
- a frozen dataclass deriving from :class:`AuditConfig`, whose fields are the audit's parameters
  (defaults in one place; :func:`option` metadata gives the help text, choices and bounds that the
  CLI (``iou_audit.cli._common.add_config_arguments``) and the plugin forms
  (``plugin/_forms.config_inputs``) are built from; ``validate`` refuses bad values with an error
  naming the parameter); the stored run config is ``config.to_params()``;
- a pure ``compute(inputs, config, progress) -> AuditOutput`` on label tables (no database access);
- a ``read`` step handing the compute its inputs.
:func:`iou_audit.audits.runner.run_audit` owns everything around them: progress, GC, counts, the
manifest of what is written and ``save_audit``.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class ToyConfig(AuditConfig):
    ...     iou_thresh: float = option(0.5, "IoU at which two labels match", low=0.0, high=1.0)
    >>> ToyConfig().to_params()
    {'iou_thresh': 0.5}
    >>> ToyConfig(iou_thresh=2.0)
    Traceback (most recent call last):
    ...
    ValueError: iou_thresh must be in [0.0, 1.0], got 2.0
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Callable, Mapping

import pandas as pd


def option(default: Any, help: str, *, choices: tuple | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False, kind: str | None = None, cli: bool = True,
           form: bool = True, label: str | None = None) -> Any:
    """A config field with the metadata the CLI and the plugin form are built from.

    ``low``/``high`` bound numbers (``low_open``: the low bound itself is refused); ``choices``
    limits a value to a set; ``kind`` overrides the inferred input kind ("field", "fields",
    "quorum", ...: inputs the generic builders leave to the audit's own CLI module and operator);
    ``cli``/``form`` exclude a parameter from either.
    """
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open, "kind": kind,
            "cli": cli, "form": form, "label": label}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in a frozen config; use a tuple or None")
    return dc_field(default=default, metadata=meta)


@dataclass(frozen=True)
class AuditConfig:
    """Base class of every audit's parameters (frozen: the stored config cannot drift from the run)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_option(f, getattr(self, f.name))
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks of a concrete audit (the per-field bounds are checked already)."""

    def to_params(self) -> dict:
        """The JSON-able parameters stored with the run (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """A config from stored parameters; unknown keys (older versions' extras) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k in names})

    @classmethod
    def defaults(cls) -> dict:
        """``{parameter: default}``: the one place the defaults live."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_option(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if not meta or value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"{f.name} must be one of {list(choices)}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{f.name} must be a number, got {value!r} ({type(value).__name__})")
    bad = not math.isfinite(float(value))
    if low is not None:
        bad |= value <= low if meta.get("low_open") else value < low
    if high is not None:
        bad |= value > high
    if bad:
        lo = "(" if meta.get("low_open") else "["
        raise ValueError(f"{f.name} must be in {lo}{low}, {high}], got {value!r}")


@dataclass
class AuditOutput:
    """What an audit's compute returns; the runner turns it into an AuditResult and the writes.

    Attributes:
        findings: one row per finding (``iou_audit.results.FINDING_COLUMNS``).
        label_values: ``{field: {attr: {label_id: value}}}``, written as ``<key>_<attr>``.
        sample_values: ``{name: {sample_id: value}}``, written as ``<key>_<name>``.
        new_fields: ``{field: {sample_id: value}}``: new sample fields the user asked for by name
            (e.g. the agreement consensus); refused when the field exists and is not this run's own,
            recorded in the manifest so ``delete_audit`` removes them. A field may instead be an
            ``iou_audit.table.raw_labels.RawLabelField`` (label documents as stored, written in one bulk).
        views: ``{kind: (view, description)}`` replacing the default saved view of a kind.
        tables, metrics: summary tables and scalars stored with the run.
        config_extra: values known only after reading (e.g. the annotator names) for the stored config.
        layout: where the labels were read (``iou_audit.table.ReadLayout``), so writes skip a lookup.
        label_batches: per-label values produced batch by batch
            (``iou_audit.results.batched.LabelBatches``), instead of ``label_values`` + ``layout``
            when they cover every label: the write then holds one batch of them at a time.
    """

    findings: pd.DataFrame
    label_values: dict = dc_field(default_factory=dict)
    sample_values: dict = dc_field(default_factory=dict)
    new_fields: dict = dc_field(default_factory=dict)
    views: dict = dc_field(default_factory=dict)
    tables: dict = dc_field(default_factory=dict)
    metrics: dict = dc_field(default_factory=dict)
    config_extra: dict = dc_field(default_factory=dict)
    layout: Any = None
    label_batches: Any = None
    #: deferred builder of ``views`` given the samples (views need the collection; compute does not)
    view_builder: Callable | None = None


def kind_counts(findings: pd.DataFrame, kinds) -> dict:
    """``{"n_<kind>": count}`` for every kind of an audit (0 for absent kinds)."""
    counts = findings["kind"].value_counts()
    return {f"n_{kind}": int(counts.get(kind, 0)) for kind in kinds}
