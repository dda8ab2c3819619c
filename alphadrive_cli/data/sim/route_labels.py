"""Path meta-actions from the simulator's semantics: the ego's lane on the road network and its route.

At frame time ``t`` the window is every recorded state from ``t`` to ``t + horizon_s``:

- a turn (``sim.junction``): some state of the window lies inside the scenario's junction (a roundabout's
  ring, an intersection's connector lanes); the direction is the route's exit against its entry heading,
  the one the navigation names, so a roundabout exit straight ahead is ``STRAIGHT``. The whole passage,
  from the last ``horizon_s`` before entering to the exit, carries the one label;
- else a lane change (``sim.lane_index``): two consecutive states on the same road whose lane index differs;
  the lower index is the left lane (highway-env numbers lanes from the left), the first change wins;
- else ``STRAIGHT`` (``sim.lane_keep``): road curvature is never a turn.

Speed actions keep the motion rule of ``labels.speed_action`` on the expert's own speed (``sim.expert_speed``).
"""

from __future__ import annotations

from collections.abc import Sequence

JUNCTION_RULE = "sim.junction"
LANE_INDEX_RULE = "sim.lane_index"
LANE_KEEP_RULE = "sim.lane_keep"
EXPERT_SPEED_RULE = "sim.expert_speed"
TURN_ACTION = {"left": "LEFT_TURN", "right": "RIGHT_TURN", "straight": "STRAIGHT"}


def route_path_action(lanes: Sequence[tuple], in_junction: Sequence[bool], route_turn: str) -> tuple[str, str]:
    """``(path action, rule)`` of a window of lane indices ``(from, to, lane)`` and their junction flags."""
    if any(in_junction):
        return TURN_ACTION[route_turn], JUNCTION_RULE
    for before, after in zip(lanes, lanes[1:], strict=False):
        if tuple(before[:2]) == tuple(after[:2]) and before[2] != after[2]:
            return ("LEFT_CHANGE" if after[2] < before[2] else "RIGHT_CHANGE"), LANE_INDEX_RULE
    return "STRAIGHT", LANE_KEEP_RULE
