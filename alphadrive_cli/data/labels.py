"""Meta-action labels from a vehicle's future motion, for imported ego poses (there is no map to read).

Real driving data sets label high-level actions from logged ego trajectories; so does ``data import
--kind poses``. The simulator has a road network and a route, so ``data sim`` labels paths from them
instead (``data/sim/route_labels.py``) and shares only :func:`speed_action`. Positions are in metres in a
right-handed frame (x, y with y to the left of x), yaw in radians counter-clockwise, time in seconds.
At frame ``i`` with horizon ``H`` (state at ``t_i + H`` interpolated):

- speed: ``STOP`` if the speed at ``t+H`` is below ``stop_speed_mps``; else ``ACCELERATE`` /
  ``DECELERATE`` if it rose / fell by more than ``accelerate_mps`` / ``decelerate_mps``; else ``KEEP``.
- path: ``LEFT_TURN`` / ``RIGHT_TURN`` if the heading turned by more than ``turn_deg`` (left is
  positive). Else, if the end point lies more than ``lane_change_m`` to the left / right of the line
  the vehicle was heading along: ``LEFT_CHANGE`` / ``RIGHT_CHANGE`` when the heading ends within
  ``turn_deg / 2`` of where it started (a lane change ends parallel), otherwise the tail of a turn,
  labelled by the heading change's direction. Else ``STRAIGHT``.

Each label names its rule (``MotionLabel.source``), stored as the record's ``label_source``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alphadrive_cli.config.schemas import LabelRules


@dataclass(frozen=True)
class Track:
    """One vehicle's motion: times (s, increasing), positions (m), yaw (rad), speed (m/s)."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray

    @classmethod
    def from_poses(cls, t: np.ndarray, x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> Track:
        """A track whose speeds are derived from positions (central differences)."""
        t, x, y = (np.asarray(values, dtype=float) for values in (t, x, y))
        if len(t) < 2:
            speed = np.zeros_like(t)
        else:
            speed = np.hypot(np.gradient(x, t), np.gradient(y, t))
        return cls(t=t, x=x, y=y, yaw=np.asarray(yaw, dtype=float), speed=speed)

    def state_at(self, time: float) -> tuple[float, float, float, float]:
        """(x, y, yaw, speed) at ``time`` by linear interpolation (yaw unwrapped first)."""
        yaw = np.unwrap(self.yaw)
        return (
            float(np.interp(time, self.t, self.x)),
            float(np.interp(time, self.t, self.y)),
            float(np.interp(time, self.t, yaw)),
            float(np.interp(time, self.t, self.speed)),
        )


SPEED_RULE = "poses.speed_change"
HEADING_RULE = "poses.heading_change"
OFFSET_RULE = "poses.lateral_offset"
STRAIGHT_RULE = "poses.straight"


@dataclass(frozen=True)
class MotionLabel:
    """The (speed, path) labels of a frame and the rule that produced each."""

    speed: str
    path: str
    source: dict[str, str] = field(default_factory=dict)


def speed_action(v_now: float, v_later: float, rules: LabelRules) -> str:
    """Speed meta-action from the speed now and at the end of the horizon."""
    if v_later < rules.stop_speed_mps:
        return "STOP"
    if v_later - v_now > rules.accelerate_mps:
        return "ACCELERATE"
    if v_now - v_later > rules.decelerate_mps:
        return "DECELERATE"
    return "KEEP"


def path_action(yaw_change: float, lateral_offset: float, rules: LabelRules) -> tuple[str, str]:
    """``(path action, rule)`` from the heading change (rad, left positive) and lateral offset (m, left positive)."""
    turn = "LEFT_TURN" if yaw_change > 0 else "RIGHT_TURN"
    if abs(yaw_change) > math.radians(rules.turn_deg):
        return turn, HEADING_RULE
    if abs(lateral_offset) > rules.lane_change_m:
        if abs(yaw_change) > math.radians(rules.turn_deg / 2):
            return turn, HEADING_RULE
        return ("LEFT_CHANGE" if lateral_offset > 0 else "RIGHT_CHANGE"), OFFSET_RULE
    return "STRAIGHT", STRAIGHT_RULE


def label_at(track: Track, index: int, rules: LabelRules) -> MotionLabel | None:
    """The labels of frame ``index``; None when the track ends before the horizon does."""
    t_now = float(track.t[index])
    if t_now + rules.horizon_s > float(track.t[-1]) + 1e-9:
        return None
    x0, y0, yaw0, v0 = track.state_at(t_now)
    x1, y1, yaw1, v1 = track.state_at(t_now + rules.horizon_s)
    dx, dy = x1 - x0, y1 - y0
    lateral = -math.sin(yaw0) * dx + math.cos(yaw0) * dy  # end point in the frame heading along yaw0
    yaw_change = math.atan2(math.sin(yaw1 - yaw0), math.cos(yaw1 - yaw0))
    path, rule = path_action(yaw_change, lateral, rules)
    return MotionLabel(speed_action(v0, v1, rules), path, {"speed": SPEED_RULE, "path": rule})
