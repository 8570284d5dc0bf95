"""The lifecycle's pure decisions: labels in key names, the policy, and ``decide``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from attrs import evolve, frozen
from hypothesis import given, settings
from hypothesis import strategies as st

from cldprov_async import AccessKey
from cldprov_async._lifecycle import (
    AUDIT_STATES,
    STATUSES,
    Decision,
    KeyName,
    LifecyclePolicy,
    age_text,
    check_run_name,
    current_name,
    decide,
    parse_name,
    pending_name,
    retired_name,
    status_of,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
RUN = "run-1"


@frozen
class Key:
    """A key record without a secret (what an audit's cache would hold)."""

    name: str
    api_key: str
    enabled: bool = True
    created_at: datetime = T0
    updated_at: datetime = T0
    dedicated_for: tuple[str, ...] = ()


def key(
    name: str, api_key: str, *, day: float = 0, changed: float | None = None, **kw: object
) -> Key:
    created = T0 + day * DAY
    updated = created if changed is None else T0 + changed * DAY
    return Key(name, api_key, created_at=created, updated_at=updated, **kw)  # type: ignore[arg-type]


def at(day: float) -> datetime:
    return T0 + day * DAY


def keys_of(keys: Sequence[Key] | tuple[Key, ...]) -> set[str]:
    return {k.api_key for k in keys}


# -- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("run-1@pending", KeyName("run-1", "pending")),
        ("run-1@current", KeyName("run-1", "current")),
        ("prod@retired", KeyName("prod", "retired")),
        ("prod@retired-123456", KeyName("prod", "retired", "123456")),
        ("a@b@current", KeyName("a@b", "current")),
        ("a@b", KeyName("a@b")),
        ("prod", KeyName("prod")),
        ("", KeyName("")),
        ("@pending", KeyName("@pending")),  # no base: not ours
        ("x@Pending", KeyName("x@Pending")),  # exact labels only
        ("x@pending ", KeyName("x@pending ")),
        ("x@retired-", KeyName("x@retired-")),
        ("x@retiredish", KeyName("x@retiredish")),
        ("x@current-1", KeyName("x@current-1")),
    ],
)
def test_parse_name(name: str, parsed: KeyName) -> None:
    assert parse_name(name) == parsed
    assert str(parsed) == name


@given(st.text(max_size=40))
def test_any_name_round_trips(name: str) -> None:
    assert str(parse_name(name)) == name


@given(st.text(min_size=1, max_size=30).filter(lambda s: "@" not in s))
def test_a_run_names_its_keys_so_that_they_parse_back(run: str) -> None:
    assert parse_name(pending_name(run)) == KeyName(run, "pending")
    assert parse_name(current_name(pending_name(run))) == KeyName(run, "current")
    retired = retired_name(current_name(pending_name(run)), "42")
    assert parse_name(retired) == KeyName(run, "retired")
    taken = retired_name(current_name(run), "42", taken={retired})
    assert parse_name(taken) == KeyName(run, "retired", "42")


def test_retired_names() -> None:
    assert retired_name("prod", "111") == "prod@retired"
    assert retired_name("r@current", "111") == "r@retired"
    assert retired_name("r@pending", "111") == "r@retired"
    assert retired_name("", "111") == "111@retired"  # an unnamed key: its api_key
    assert retired_name("prod", "111", taken={"prod@retired"}) == "prod@retired-111"


@pytest.mark.parametrize(
    ("name", "error"),
    [("", ValueError), ("a@b", ValueError), (3, TypeError), (None, TypeError)],
)
def test_check_run_name(name: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="name"):
        check_run_name(name)
    assert check_run_name("ok-name") == "ok-name"


# -- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"older_than": timedelta(0)}, ValueError, "older_than"),
        ({"older_than": 30}, TypeError, "older_than"),
        ({"grace": -DAY}, ValueError, "grace"),
        ({"grace": None}, TypeError, "grace"),
        ({"prune_after": -DAY}, ValueError, "prune_after"),
        ({"retire": "shred"}, ValueError, "retire"),
        ({"retire": "keep", "grace": DAY}, ValueError, "keep"),
        ({"retire": "keep", "prune_after": DAY}, ValueError, "keep"),
    ],
)
def test_policy_checks(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LifecyclePolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_defaults() -> None:
    policy = LifecyclePolicy()
    assert (policy.older_than, policy.grace, policy.prune_after, policy.retire) == (
        None,
        timedelta(0),
        None,
        "disable",
    )
    LifecyclePolicy(retire="keep")  # no grace, no prune: fine


# -- decide: table ------------------------------------------------------------------------

P30 = LifecyclePolicy(older_than=30 * DAY, grace=7 * DAY, prune_after=14 * DAY)


def test_a_hand_made_key_past_the_policy_is_due() -> None:
    d = decide([key("prod", "1", day=0)], at(40), P30, RUN)
    assert d.generate and d.hand_off is None and d.retire == () and d.prune == ()
    assert (d.state, d.next, d.next_at, d.reason) == ("due", "generate", None, None)
    assert d.facts.newest_enabled_age == 40 * DAY and d.facts.enabled == 1


def test_a_young_key_is_not_due_and_says_when() -> None:
    d = decide([key("prod", "1", day=0)], at(10), P30, RUN)
    assert not d.due
    assert d.state == "current"
    assert (d.next, d.next_at) == ("generate", at(30) + timedelta(microseconds=1))  # strictly older
    assert d.reason == "newest enabled key 'prod' is 10d old, not older than 30d"


def test_the_command_line_shows_a_due_moment_at_the_whole_second_at_or_after_it() -> None:
    from cldprov_async._cli.output import iso_due

    d = decide([key("prod", "1", day=0)], at(10), P30, RUN)
    assert d.next_at is not None
    assert iso_due(d.next_at) == "2026-01-31T00:00:01Z"
    assert iso_due(at(30)) == "2026-01-31T00:00:00Z"  # already whole: unchanged
    # At the second shown, the step is due.
    assert decide([key("prod", "1", day=0)], at(30) + timedelta(seconds=1), P30, RUN).generate


def test_a_hand_made_key_newer_than_the_rest_counts_for_older_than() -> None:
    keys = [key("r@current", "1", day=0), key("by-hand", "2", day=35)]
    d = decide(keys, at(40), P30, RUN)
    assert not d.generate and d.retire == ()  # grace over, but nothing older than current
    assert d.state == "current"


def test_a_pending_key_is_handed_off_and_nothing_retires_before() -> None:
    keys = [
        key("old@current", "1", day=0, changed=0),
        key("prod", "2", day=-10, dedicated_for=("webhooks",)),
        key("r0@pending", "3", day=40),
    ]
    d = decide(keys, at(45), P30, RUN)
    assert d.hand_off is not None and d.hand_off.api_key == "3"
    assert not d.generate and d.retire == ()
    assert d.dedicate is d.hand_off  # an older enabled key holds the dedication
    assert (d.state, d.next) == ("hand-off pending", "hand_off")
    assert d.resume is None  # made by another run: handed off, not ours
    assert decide(keys, at(45), P30, "r0").resume is d.hand_off


def test_the_newest_of_several_pending_keys_is_handed_off() -> None:
    keys = [key("a@pending", "1", day=1), key("b@pending", "2", day=2), key("c", "3")]
    d = decide(keys, at(3), P30, RUN)
    assert d.hand_off is not None and d.hand_off.api_key == "2"


def test_a_pending_key_older_than_the_current_one_is_stale() -> None:
    keys = [key("a@pending", "1", day=1), key("b@current", "2", day=2, changed=2)]
    d = decide(keys, at(3), P30, RUN)
    assert d.hand_off is None
    assert (d.state, d.in_grace_until) == ("in grace", at(9))
    d = decide(keys, at(9), P30, RUN)
    assert keys_of(d.retire) == {"1"}  # retired with the older keys once the grace is over


def test_in_grace_nothing_new_whatever_older_than_says() -> None:
    keys = [key("prod", "1", day=-100), key("r@current", "2", day=0, changed=3)]
    policy = evolve(P30, older_than=DAY)
    d = decide(keys, at(5), policy, RUN)
    assert not d.generate and d.retire == ()
    assert (d.state, d.retire_at, d.in_grace_until) == ("in grace", at(10), at(10))
    assert (d.next, d.next_at) == ("in_grace", at(10))
    assert d.generate_at == at(10)
    assert d.reason is not None and d.reason.startswith("in grace until 2026-01-11T00:00:00Z")


def test_after_the_grace_the_older_keys_retire_and_a_due_successor_follows() -> None:
    keys = [
        key("prod", "1", day=-100, dedicated_for=("webhooks",)),
        key("a@current", "2", day=-50),
        key("b@current", "3", day=0, changed=1),
        key("later-by-hand", "4", day=2),
        key("off-by-hand", "5", day=-200, enabled=False),
    ]
    d = decide(keys, at(40), P30, RUN)
    assert keys_of(d.retire) == {"1", "2"}  # not the current one, not the newer hand-made one
    assert d.current is not None and d.current.api_key == "3"
    assert d.dedicate is d.current  # it takes the dedication before the holder retires
    assert d.generate  # the newest enabled key (by hand, day 2) is 38 days old
    assert (d.state, d.next) == ("retire due", "retire")


def test_keep_never_retires_and_has_no_grace() -> None:
    keys = [key("prod", "1", day=-100), key("r@current", "2", day=0)]
    d = decide(keys, at(1), LifecyclePolicy(retire="keep"), RUN)
    assert d.retire == () and d.retire_at is None
    assert d.generate  # no older_than: every run that may


def test_pruning_only_keys_a_rotation_retired() -> None:
    keys = [
        key("r@current", "1", day=0),
        key("a@retired", "2", day=-60, changed=-20, enabled=False),
        key("b@retired-9", "3", day=-60, changed=-14, enabled=False),
        key("c@retired", "4", day=-60, changed=-5, enabled=False),
        key("by-hand", "5", day=-60, changed=-40, enabled=False),
        key("d@retired", "6", day=-60, changed=-40, enabled=True),  # re-enabled by hand
    ]
    d = decide(keys, at(0), P30, RUN)
    assert keys_of(d.prune) == {"2", "3"}
    assert d.prune_at == at(9)
    assert d.facts.retired == 3 and d.facts.disabled == 4
    assert decide(keys, at(0), evolve(P30, prune_after=None), RUN).prune == ()


def test_no_enabled_key_is_skipped_but_still_pruned() -> None:
    keys = [
        key("x@retired", "1", day=-60, changed=-30, enabled=False),
        key("y", "2", enabled=False),
    ]
    d = decide(keys, at(0), P30, RUN)
    assert not d.generate and keys_of(d.prune) == {"1"}
    assert d.state == "no enabled key"
    empty = decide([key("y", "2", enabled=False)], at(0), P30, RUN)
    assert empty.reason == "no enabled key (disabled on purpose?); not rotated"
    assert (empty.next, empty.next_at) == (None, None)


def test_a_rerun_reports_its_key_again_and_makes_no_other() -> None:
    keys = [key("prod", "1", day=-100), key(f"{RUN}@current", "2", day=0, changed=0)]
    d = decide(keys, at(8), evolve(P30, older_than=None), RUN)
    assert d.resume is not None and d.resume.api_key == "2"
    assert keys_of(d.retire) == {"1"}
    assert not d.generate  # this run made this environment's key already
    other = decide(keys, at(8), evolve(P30, older_than=None), "run-2")
    assert other.generate and other.resume is None


def test_the_audit_facts() -> None:
    keys = [
        key("prod", "1", day=-100, dedicated_for=("webhooks",)),
        key("r@current", "2", day=-10),
        key("s@pending", "3", day=-1),
        key("x@retired", "4", day=-200, enabled=False),
    ]
    facts = decide(keys, at(0), P30).facts
    assert facts.keys == 4 and facts.enabled == 3 and facts.disabled == 1
    assert facts.pending == 1 and facts.retired == 1
    assert facts.newest_enabled_age == DAY and facts.oldest_enabled_age == 100 * DAY
    assert facts.webhooks_key == "1" and facts.current_key == "2"


def test_access_keys_are_decided_on_as_they_are() -> None:
    keys = [
        AccessKey("prod", "1", T0, T0, True, "s3cret"),
        AccessKey("r@pending", "2", at(1), at(1), True, "s3cret2"),
    ]
    d: Decision[AccessKey] = decide(keys, at(2), P30, RUN)
    assert d.hand_off is keys[1]


@pytest.mark.parametrize(
    ("steps", "in_grace", "failed", "status"),
    [
        ((), False, False, "skipped"),
        ((), True, False, "in_grace"),
        (("generated", "verified", "handed_off", "retired"), False, False, "rotated"),
        (("generated", "verified", "handed_off"), True, False, "handed_off"),
        (("retired", "generated", "handed_off"), False, False, "handed_off"),
        (("retired", "generated", "handed_off", "pruned"), False, False, "handed_off"),
        (("retired",), True, False, "retired"),
        (("retired", "pruned"), False, False, "retired"),
        (("pruned",), False, False, "pruned"),
        (("generated",), False, True, "failed"),
    ],
)
def test_status_of(steps: tuple[str, ...], in_grace: bool, failed: bool, status: str) -> None:
    assert status_of(steps, in_grace=in_grace, failed=failed) == status  # type: ignore[arg-type]
    assert status in STATUSES


def test_age_text() -> None:
    assert [age_text(s) for s in (90 * DAY, timedelta(hours=12.5), timedelta(minutes=30))] == [
        "90d",
        "12.5h",
        "30m",
    ]
    assert age_text(timedelta(seconds=-3)) == "0s"


# -- decide: properties -------------------------------------------------------------------

LABELS = ["", "@pending", "@current", "@retired", "@retired-9"]
key_records = st.builds(
    lambda base, label, api_key, enabled, day, changed, hooks: key(
        base + label,
        str(api_key),
        day=day,
        changed=day + changed,
        enabled=enabled,
        dedicated_for=("webhooks",) if hooks else (),
    ),
    st.sampled_from(["r1", "r2", "prod", RUN]),
    st.sampled_from(LABELS),
    st.integers(0, 10**6),
    st.booleans(),
    st.integers(-100, 100),
    st.integers(0, 30),
    st.booleans(),
)
policies = st.builds(
    LifecyclePolicy,
    older_than=st.one_of(st.none(), st.integers(1, 60).map(lambda d: d * DAY)),
    grace=st.integers(0, 10).map(lambda d: d * DAY),
    prune_after=st.one_of(st.none(), st.integers(0, 30).map(lambda d: d * DAY)),
    retire=st.sampled_from(["disable", "delete"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(key_records, max_size=8, unique_by=lambda k: k.api_key),
    policies,
    st.integers(-50, 200),
)
def test_decisions_keep_their_promises(keys: list[Key], policy: LifecyclePolicy, day: int) -> None:
    d = decide(keys, at(day), policy, RUN)
    assert d.state in AUDIT_STATES
    enabled = [k for k in keys if k.enabled]
    if d.hand_off is not None:  # a hand-off first; nothing retired before it
        assert not d.generate and d.retire == ()
        assert d.hand_off.enabled and parse_name(d.hand_off.name).label == "pending"
    if d.retire:
        current = d.current
        assert current is not None and current.enabled
        assert all(k.enabled and k is not current for k in d.retire)
        assert all(k.created_at <= current.created_at for k in d.retire)
        assert at(day) >= current.updated_at + policy.grace
        assert len(d.retire) < len(enabled)  # the current key stays
    if d.generate:
        assert enabled and d.retire_at is None and d.in_grace_until is None
        assert not any(parse_name(k.name).base == RUN and parse_name(k.name).label for k in keys)
    for k in d.prune:
        assert not k.enabled and parse_name(k.name).label == "retired"
        assert policy.prune_after is not None and k.updated_at + policy.prune_after <= at(day)
    if d.next_at is not None:
        assert d.next_at > at(day)
    assert (d.next is None) == (not d.due and d.next_at is None)
    if not enabled:
        assert d.state == "no enabled key" and not d.generate


@settings(max_examples=40, deadline=None)
@given(policies, st.integers(1, 3), st.lists(st.booleans(), min_size=30, max_size=90))
def test_daily_runs_on_a_model_server_never_leave_an_environment_without_its_key(
    policy: LifecyclePolicy, start_keys: int, hand_offs_ok: list[bool]
) -> None:
    """Apply each day's decisions to a model of the server (hand-offs that fail at random):
    the key last handed off is enabled every day, and at most one key is ever pending."""
    keys = {str(n): key(f"k{n}", str(n), day=-40) for n in range(start_keys)}
    delivered: str | None = None  # what the consumer holds
    made = 0
    for day, ok in enumerate(hand_offs_ok):
        now = at(day)
        for _ in range(4):  # a run takes every step due, deciding again after each
            d = decide(list(keys.values()), now, policy, f"run-{day}")
            if d.retire:
                for k in d.retire:
                    name = retired_name(k.name, k.api_key, {x.name for x in keys.values()})
                    keys[k.api_key] = evolve(k, enabled=False, name=name, updated_at=now)
                    if policy.retire == "delete":
                        del keys[k.api_key]
            elif d.generate:
                made += 1
                new = key(pending_name(f"run-{day}"), f"n{made}", day=day)
                keys[new.api_key] = new
            elif d.hand_off is not None:
                if not ok:
                    break
                handed = evolve(d.hand_off, name=current_name(d.hand_off.name), updated_at=now)
                keys[handed.api_key] = handed
                delivered = handed.api_key
            elif d.prune:
                for k in d.prune:
                    del keys[k.api_key]
            else:
                break
        holder = delivered if delivered is not None else "0"
        assert keys[holder].enabled, f"day {day}: the consumer's key was retired"
        assert sum(parse_name(k.name).label == "pending" and k.enabled for k in keys.values()) <= 1
