"""The rotation lifecycle's decisions: what is due for one environment, from its keys and now.

A lifecycle rotation keeps all of its state on the server, in the keys' names, enabled flags
and dates, so any run on any machine continues where the last one stopped. A rotation's key
carries a label after ``@`` (reserved: do not end hand-made names with these):

- ``NAME@pending``: made by the run called NAME, not yet handed off to its consumers;
- ``NAME@current``: handed off; the rename's ``updated_at`` is the hand-off time, from which
  the grace period counts;
- ``BASE@retired`` (or ``BASE@retired-API_KEY`` when that name is taken): an older key a
  rotation disabled; its ``updated_at`` is the retire time, from which the prune age counts.
  Only disabled keys with this label are ever pruned.

Any other name is a hand-made key: it counts as the newest enabled key for ``older_than``
but never gets other keys retired or pruned.

``decide`` is a pure function (no I/O, no clock of its own) of an environment's keys, ``now``,
the ``LifecyclePolicy`` and the run's name. It returns a ``Decision``: the steps due now (in
the order a run takes them), when the next ones fall due, the audit state and the facts an
audit row shows. A run takes a step, then decides again from the keys as they now stand.

Keys are anything shaped like ``AccessKey`` (``KeyLike``), so a cache of keys without
secrets can be decided on too.

Names and labels live in ``_labels`` (re-exported here). Imports: ``_labels`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, get_args

from attrs import field, frozen

from ._labels import (
    KeyName,
    Label,
    check_run_name,
    current_name,
    parse_name,
    pending_name,
    retired_name,
)

__all__ = [
    "AUDIT_STATES",
    "RETIRE_MODES",
    "STATUSES",
    "STEPS",
    "AuditState",
    "Decision",
    "Facts",
    "KeyLike",
    "KeyName",
    "Label",
    "LifecyclePolicy",
    "NextStep",
    "Retire",
    "Status",
    "Step",
    "age_text",
    "check_run_name",
    "current_name",
    "decide",
    "parse_name",
    "pending_name",
    "retired_name",
    "status_of",
]

Retire = Literal["disable", "delete", "keep"]
RETIRE_MODES: Final[tuple[Retire, ...]] = ("disable", "delete", "keep")

#: The steps a run takes, as its output names them, in the order they can happen.
Step = Literal["generated", "verified", "handed_off", "retired", "pruned"]
STEPS: Final[tuple[Step, ...]] = get_args(Step)
#: What a run did to one environment (``planned``: a dry run).
Status = Literal[
    "rotated", "handed_off", "in_grace", "retired", "pruned", "skipped", "failed", "planned"
]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
#: What a dry run says a real run would do next: a step due now, ``in_grace``, or the step
#: that falls due first later (with ``Decision.next_at``).
NextStep = Literal["generate", "hand_off", "retire", "prune", "in_grace"]
AuditState = Literal[
    "current", "due", "hand-off pending", "in grace", "retire due", "prune due", "no enabled key"
]
AUDIT_STATES: Final[tuple[AuditState, ...]] = get_args(AuditState)
#: The clock's smallest step: a strict "older than" first holds this long past its boundary.
_TICK: Final = timedelta(microseconds=1)

# -- the policy ----------------------------------------------------------------------------------


def _age_check(*, optional: bool, positive: bool) -> Callable[[object, Any, object], None]:
    def check(_: object, attribute: Any, value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, timedelta):
            raise TypeError(f"{attribute.name} must be a timedelta, not {type(value).__name__}")
        if value < timedelta(0) or (positive and not value):
            raise ValueError(
                f"{attribute.name} must be {'positive' if positive else '>= 0'}, not {value}"
            )

    return check


def _retire_mode(_: object, attribute: Any, value: object) -> None:
    if value not in RETIRE_MODES:
        raise ValueError(f"retire must be one of {RETIRE_MODES}, not {value!r}")


@frozen
class LifecyclePolicy:
    """When keys are made, retired and pruned: the rotation's policy, and the audit's.

    Attributes:
        older_than: make a new key only when the newest enabled key is older than this
            (None: on every run that may).
        grace: how long a handed-off key serves beside the older keys before they retire.
        prune_after: delete keys a rotation retired this long ago (None: never).
        retire: what retiring does to an older key: ``disable`` (and label it for pruning),
            ``delete``, or ``keep`` (never retire; then grace and prune_after are unset).

    Raises:
        TypeError: a value of the wrong type.
        ValueError: a negative age, a zero ``older_than``, an unknown ``retire`` mode, or
            ``keep`` with a grace or prune age.
    """

    older_than: timedelta | None = field(
        default=None, validator=_age_check(optional=True, positive=True)
    )
    grace: timedelta = field(
        default=timedelta(0), validator=_age_check(optional=False, positive=False)
    )
    prune_after: timedelta | None = field(
        default=None, validator=_age_check(optional=True, positive=False)
    )
    retire: Retire = field(default="disable", validator=_retire_mode)

    def __attrs_post_init__(self) -> None:
        if self.retire == "keep" and (self.grace or self.prune_after is not None):
            raise ValueError("retire='keep' retires nothing: it takes no grace or prune_after")


# -- the keys -------------------------------------------------------------------------------------


class KeyLike(Protocol):
    """What a decision reads of a key (``AccessKey`` has it; a cache's records may too)."""

    @property
    def name(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def updated_at(self) -> datetime: ...

    @property
    def dedicated_for(self) -> Collection[str]: ...


K = TypeVar("K", bound=KeyLike)


def _newest(keys: Iterable[K]) -> K | None:
    """The most recently created (ties: the later change, then the larger api_key)."""
    return max(keys, key=lambda k: (k.created_at, k.updated_at, k.api_key), default=None)


def _webhooks(key: KeyLike) -> bool:
    return "webhooks" in key.dedicated_for


def age_text(span: timedelta) -> str:
    """``90d``, ``12.5h``, ``30m``, ``45s``: an age for humans."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{max(0, seconds)}s"


# -- the decision --------------------------------------------------------------------------------


@frozen
class Facts:
    """What an audit row shows of one environment (ages are as of the decision's ``now``).

    Attributes:
        keys: all keys.
        enabled: the enabled keys among them.
        disabled: the disabled keys among them.
        pending: enabled keys labelled ``@pending``.
        retired: disabled keys labelled ``@retired`` (the ones pruning may delete).
        newest_enabled_age: age of the newest enabled key (None: no enabled key).
        oldest_enabled_age: age of the oldest enabled key.
        webhooks_key: api_key of the key dedicated for webhooks, if any.
        current_key: api_key of the newest enabled ``@current`` key, if any.
    """

    keys: int
    enabled: int
    disabled: int
    pending: int
    retired: int
    newest_enabled_age: timedelta | None
    oldest_enabled_age: timedelta | None
    webhooks_key: str | None
    current_key: str | None


@frozen
class Decision(Generic[K]):
    """What is due for one environment now, and when the rest falls due.

    Due now, in the order a run takes them: ``retire`` (the older keys, once the current
    key's grace is over), ``generate`` (a new key), ``hand_off`` (a pending key, verified then
    handed to its consumers), ``prune`` (keys a rotation retired long enough ago). A hand-off
    retires nothing before it has succeeded: the run decides again after it.

    Attributes:
        generate: a new key is due.
        hand_off: the pending key to verify and hand off now (never with ``generate``).
        retire: enabled keys whose retirement is due now.
        prune: disabled ``@retired`` keys due for deletion now.
        dedicate: the key that takes the webhook dedication now (the hand-off key, or the
            current key before an older key holding it retires), else None.
        resume: the key this run's name already made here (pending or current): a rerun
            reports it again and makes no other.
        current: the newest enabled ``@current`` key.
        retire_at: when the keys waiting for the current key's grace fall due (in grace).
        prune_at: when the next retired key falls due for pruning.
        generate_at: when a new key falls due, when known and not now.
        next: what a dry run reports a real run would do (see ``NextStep``), or None.
        next_at: when ``next`` falls due, None when due now.
        state: the audit state.
        reason: why nothing is due, for a skipped environment.
        facts: counts, ages and keys for an audit row.
    """

    generate: bool
    hand_off: K | None
    retire: tuple[K, ...]
    prune: tuple[K, ...]
    dedicate: K | None
    resume: K | None
    current: K | None
    retire_at: datetime | None
    prune_at: datetime | None
    generate_at: datetime | None
    next: NextStep | None
    next_at: datetime | None
    state: AuditState
    reason: str | None
    facts: Facts

    @property
    def in_grace_until(self) -> datetime | None:
        """The end of the grace period while the older keys wait for it, else None."""
        return self.retire_at if self.state == "in grace" else None

    @property
    def due(self) -> bool:
        """Whether any step is due now."""
        return bool(self.generate or self.hand_off or self.retire or self.prune)


def decide(
    keys: Sequence[K], now: datetime, policy: LifecyclePolicy, run: str | None = None
) -> Decision[K]:
    """What is due for an environment holding ``keys`` at ``now`` (see the module docstring).

    Args:
        keys: every key of the environment (``AccessKey`` or any ``KeyLike``).
        now: the clock's time, timezone-aware like the keys' dates.
        policy: the ``LifecyclePolicy``.
        run: the run's name (its keys are ``RUN@pending``/``RUN@current``); None for an
            audit, which is no run.

    Returns:
        The ``Decision``.
    """
    named = [(k, parse_name(k.name)) for k in keys]
    enabled = [k for k in keys if k.enabled]
    pendings = [k for k, n in named if k.enabled and n.label == "pending"]
    current = _newest(k for k, n in named if k.enabled and n.label == "current")
    pending = _newest(pendings)
    if pending is not None and current is not None and pending.created_at < current.created_at:
        pending = None  # older than the current key: stale, retired with the other old keys
    facts = _facts(named, enabled, current, now)
    prune, prune_at = _prune(named, now, policy.prune_after)
    resume = _resume(run, pending, current)
    ours = run is not None and any(n.base == run and n.label is not None for _, n in named)

    if pending is not None:  # rule 1: finish the hand-off; nothing older retires before it
        holder = any(_webhooks(k) for k in enabled if k is not pending)
        return Decision(
            generate=False,
            hand_off=pending,
            retire=(),
            prune=prune,
            dedicate=pending if holder and not _webhooks(pending) else None,
            resume=resume,
            current=current,
            retire_at=None,
            prune_at=prune_at,
            generate_at=None,
            next="hand_off",
            next_at=None,
            state="hand-off pending",
            reason=None,
            facts=facts,
        )

    retire: tuple[K, ...] = ()
    retire_at = None
    waiting: list[K] = []
    if current is not None and policy.retire != "keep":  # rule 2
        waiting = [k for k in enabled if k is not current and k.created_at <= current.created_at]
        if waiting:
            retire_at = current.updated_at + policy.grace
            if now >= retire_at:
                retire, retire_at = tuple(waiting), None
    dedicate = None
    if current is not None and not _webhooks(current) and any(_webhooks(k) for k in retire):
        dedicate = current

    newest = _newest(enabled)  # rule 4
    generate = False
    generate_at = None
    reason = None
    if newest is None:
        reason = "no enabled key (disabled on purpose?); not rotated"
    elif ours:
        reason = f"run {run!r} already made this environment's key"
    elif policy.older_than is None or now - newest.created_at > policy.older_than:
        generate = retire_at is None
        generate_at = retire_at
    else:
        # "Older than" is strict: the first instant it holds is one tick past the boundary.
        generate_at = newest.created_at + policy.older_than + _TICK
        if retire_at is not None:
            generate_at = max(generate_at, retire_at)
        label = newest.name or newest.api_key
        reason = (
            f"newest enabled key {label!r} is {age_text(now - newest.created_at)} old,"
            f" not older than {age_text(policy.older_than)}"
        )
    if retire_at is not None:
        reason = f"in grace until {_iso(retire_at)}: {len(waiting)} older key(s) wait"

    state: AuditState = "current"
    if newest is None:
        state = "no enabled key"
    elif retire:
        state = "retire due"
    elif retire_at is not None:
        state = "in grace"
    elif generate:
        state = "due"
    elif prune:
        state = "prune due"
    nxt, nxt_at = _next(retire, generate, prune, retire_at, generate_at, prune_at)
    return Decision(
        generate=generate,
        hand_off=None,
        retire=retire,
        prune=prune,
        dedicate=dedicate,
        resume=resume,
        current=current,
        retire_at=retire_at,
        prune_at=prune_at,
        generate_at=generate_at,
        next=nxt,
        next_at=nxt_at,
        state=state,
        reason=None if (retire or generate or prune) else reason,
        facts=facts,
    )


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _resume(run: str | None, pending: K | None, current: K | None) -> K | None:
    """The key of this run that still serves: the one to hand off, or the current one."""
    if run is None:
        return None
    for key in (pending, current):
        if key is not None and parse_name(key.name).base == run:
            return key
    return None


def _prune(
    named: Sequence[tuple[K, KeyName]], now: datetime, after: timedelta | None
) -> tuple[tuple[K, ...], datetime | None]:
    """Rule 3: disabled ``@retired`` keys retired at least ``after`` ago; the next one's date."""
    if after is None:
        return (), None
    due: list[K] = []
    later: list[datetime] = []
    for key, name in named:
        if key.enabled or name.label != "retired":
            continue
        at = key.updated_at + after
        if at <= now:
            due.append(key)
        else:
            later.append(at)
    return tuple(due), min(later, default=None)


def _next(
    retire: tuple[K, ...],
    generate: bool,
    prune: tuple[K, ...],
    retire_at: datetime | None,
    generate_at: datetime | None,
    prune_at: datetime | None,
) -> tuple[NextStep | None, datetime | None]:
    """A dry run's ``next``/``next_at``: a step due now, else the grace, else the soonest."""
    if retire:
        return "retire", None
    if generate:
        return "generate", None
    if prune:
        return "prune", None
    if retire_at is not None:
        return "in_grace", retire_at
    later: list[tuple[datetime, NextStep]] = []
    if generate_at is not None:
        later.append((generate_at, "generate"))
    if prune_at is not None:
        later.append((prune_at, "prune"))
    if not later:
        return None, None
    at, step = min(later)
    return step, at


def _facts(
    named: Sequence[tuple[K, KeyName]], enabled: Sequence[K], current: K | None, now: datetime
) -> Facts:
    created = [k.created_at for k in enabled]
    webhooks = next((k.api_key for k, _ in named if _webhooks(k)), None)
    return Facts(
        keys=len(named),
        enabled=len(enabled),
        disabled=len(named) - len(enabled),
        pending=sum(k.enabled and n.label == "pending" for k, n in named),
        retired=sum(not k.enabled and n.label == "retired" for k, n in named),
        newest_enabled_age=now - max(created) if created else None,
        oldest_enabled_age=now - min(created) if created else None,
        webhooks_key=webhooks,
        current_key=None if current is None else current.api_key,
    )


def status_of(steps: Sequence[Step], *, in_grace: bool = False, failed: bool = False) -> Status:
    """A run's status for one environment from the steps it took (and what it found).

    ``rotated``: handed off and the older keys retired in the same run; ``handed_off``: the
    older keys wait for the grace; ``retired``/``pruned``: only those; ``in_grace``: nothing
    due while the grace runs; ``skipped``: nothing due.
    """
    if failed:
        return "failed"
    if "handed_off" in steps:
        after = steps[steps.index("handed_off") :]
        return "rotated" if "retired" in after else "handed_off"
    if "retired" in steps:
        return "retired"
    if "pruned" in steps:
        return "pruned"
    return "in_grace" if in_grace else "skipped"
