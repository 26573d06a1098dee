"""A live rollout: a challenger gets a share of the promoted version's traffic, moved by hand.

``start`` (``workbench serve NAME --canary VERSION --share S``) records the rollout of a stored
version of the same model, task and classes against the version promoted now; ``advance`` moves
the share (by default to the next step of :data:`STEPS`); ``abort`` ends it (the router sends
everything to the promoted version again). Each change goes into ``release/rollout.yaml``'s
history with the cluster recipe beside it (:mod:`workbench.rollouts`). Promoting the challenger
when it has earned it stays ``workbench promote`` (gated); the rollout then reads as done.
"""

from __future__ import annotations

from typing import Any

import httpx

from workbench.config import Config
from workbench.errors import VersionError
from workbench.packaging.kubernetes import render_rollout
from workbench.promotions import history_path, promoted_tag
from workbench.rollouts import Rollout, RolloutChange, read_rollout, record_rollout, rollout_path
from workbench.serving.canary import ROUTER_TAG, Canary, start_canary
from workbench.serving.processes import ServerRecord, owner_alive
from workbench.serving.server import state_dir
from workbench.versions.catalog import StoredVersion, resolve_version
from workbench.versions.promotion import _now, _user

STEPS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
"""``rollout advance`` without ``--share`` moves to the next of these."""
FIRST_SHARE = 0.1


def _share(share: float) -> float:
    if not 0.0 < share <= 1.0:
        raise VersionError(
            f"share {share:g} is not a fraction of the requests: give one above 0 and at most 1 "
            "(0.1 sends a tenth of them to the challenger)"
        )
    return float(share)


def _versions(config: Config, challenger: str) -> tuple[StoredVersion, StoredVersion]:
    """(the promoted version, the challenger), refused unless they can share live traffic."""
    name = config.name
    promoted = promoted_tag(config.root, name)
    if promoted is None:
        raise VersionError(
            f"no version of {name!r} is promoted ({history_path(config.root, name)}): a "
            f"challenger is rolled out against the promoted one; promote one first "
            f"(`workbench promote {name}:VERSION --reason ...`)"
        )
    primary = resolve_version(promoted, name=name)
    candidate = resolve_version(challenger, name=None if ":" in challenger else name)
    if candidate.name != name:
        raise VersionError(f"{candidate.tag} is not a version of {name!r}; roll out its own")
    if candidate.tag == primary.tag:
        raise VersionError(f"{candidate.tag} is the promoted version; roll out another one")
    if (candidate.task, candidate.card.classes) != (primary.task, primary.card.classes):
        raise VersionError(
            f"{candidate.tag} ({candidate.task}, classes {candidate.card.classes}) answers other "
            f"than {primary.tag} ({primary.task}, classes {primary.card.classes}): their live "
            "metrics and feedback could not be compared; compare them offline (workbench shadow)"
        )
    return primary, candidate


def _record(config: Config, current: Rollout, change: RolloutChange) -> Rollout:
    manifest = render_rollout(
        config.name,
        change.promoted.split(":", 1)[1],
        change.challenger.split(":", 1)[1],
        change.share,
        config,
    )
    return record_rollout(config.root, config.name, change, expected=current, manifest=manifest)


def start_rollout(
    config: Config, challenger: str, *, share: float | None = None, reason: str = ""
) -> Rollout:
    """Roll ``challenger`` out to ``share`` of the requests (default :data:`FIRST_SHARE`), or
    resume the active rollout of the same version at its recorded share."""
    primary, candidate = _versions(config, challenger)
    current = read_rollout(config.root, config.name)
    if current.active:
        if (current.challenger, current.promoted) == (candidate.tag, primary.tag):
            if share is not None and share != current.share:
                raise VersionError(
                    f"the rollout of {candidate.tag} is at share {current.share:g}; move it "
                    f"with `workbench rollout advance {config.name} --share {share:g}`"
                )
            return current
        raise VersionError(
            f"{current.challenger} is being rolled out against {current.promoted} "
            f"({rollout_path(config.root, config.name)}); end it first (`workbench rollout abort "
            f"{config.name}`) or serve that one"
        )
    change = RolloutChange(
        action="start",
        share=_share(FIRST_SHARE if share is None else share),
        challenger=candidate.tag,
        promoted=primary.tag,
        at=_now(),
        by=_user(config.root),
        reason=reason,
    )
    return _record(config, current, change)


def _active(config: Config, action: str) -> Rollout:
    current = read_rollout(config.root, config.name)
    if not current.active:
        raise VersionError(
            f"no rollout of {config.name!r} is active to {action} "
            f"({rollout_path(config.root, config.name)}); start one with `workbench serve "
            f"{config.name} --canary VERSION --share 0.1`"
        )
    return current


def advance_rollout(config: Config, *, share: float | None = None, reason: str = "") -> Rollout:
    """Move the challenger's share to ``share`` (default: the next of :data:`STEPS`)."""
    current = _active(config, "advance")
    if share is None:
        share = next((s for s in STEPS if s > current.share), None)
        if share is None:
            raise VersionError(
                f"{current.challenger} already gets every request (share 1); promote it "
                f"(`workbench promote {current.challenger} --reason ...`) or abort"
            )
    share = _share(share)
    if share == current.share:
        raise VersionError(f"the share is {share:g} already; give another one")
    assert current.challenger is not None and current.promoted is not None
    change = RolloutChange(
        action="advance",
        share=share,
        previous_share=current.share,
        challenger=current.challenger,
        promoted=current.promoted,
        at=_now(),
        by=_user(config.root),
        reason=reason,
    )
    return _record(config, current, change)


def abort_rollout(config: Config, *, reason: str = "") -> Rollout:
    """End the rollout: every request goes to the promoted version again."""
    current = _active(config, "abort")
    assert current.challenger is not None and current.promoted is not None
    change = RolloutChange(
        action="abort",
        share=0.0,
        previous_share=current.share,
        challenger=current.challenger,
        promoted=current.promoted,
        at=_now(),
        by=_user(config.root),
        reason=reason,
    )
    return _record(config, current, change)


def serve_rollout(
    config: Config,
    challenger: str,
    *,
    share: float | None = None,
    port: int | None = None,
    portable: bool | None = None,
    reason: str = "",
) -> tuple[Canary, Rollout]:
    """Start (or resume) the rollout of ``challenger`` and serve it: the promoted version and
    the challenger behind one router on 127.0.0.1. The caller stops the :class:`Canary`."""
    rollout = start_rollout(config, challenger, share=share, reason=reason)
    assert rollout.promoted is not None and rollout.challenger is not None
    primary = resolve_version(rollout.promoted, name=config.name)
    canary = start_canary(
        config,
        rollout.promoted,
        rollout.challenger,
        rollout_file=rollout_path(config.root, config.name),
        task=primary.task,
        classes=primary.card.classes,
        port=port,
        portable=portable,
    )
    return canary, rollout


def live_states(name: str, *, timeout: float = 2.0) -> list[dict[str, Any]]:
    """``GET /rollout`` of each canary router of ``name`` running on this machine."""
    states = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            record = ServerRecord.from_json(path.read_text())
        except (OSError, ValueError):
            continue
        if record.bento_tag != ROUTER_TAG.format(name=name) or not owner_alive(record):
            continue
        try:
            answer = httpx.get(f"{record.url}/rollout", timeout=timeout)
        except httpx.HTTPError:
            continue
        if answer.status_code == 200:
            states.append({"url": record.url, **answer.json()})
    return states


__all__ = [
    "FIRST_SHARE",
    "STEPS",
    "abort_rollout",
    "advance_rollout",
    "live_states",
    "serve_rollout",
    "start_rollout",
]
