"""A plan as highway-env meta-actions for its ``MDPVehicle``: what closed loop and the plan judge both drive.

ACCELERATE is FASTER and DECELERATE is SLOWER (one step on the scenario's ladder of target speeds), STOP is
SLOWER at every decision (so the car keeps slowing down to 0), KEEP changes nothing; LEFT_CHANGE / RIGHT_CHANGE
are LANE_LEFT / LANE_RIGHT, while STRAIGHT and the turns follow the route (the vehicle steers along it).
"""

from __future__ import annotations

# The speeds FASTER / SLOWER step between (m/s), from standstill to the scenario's usual top speed.
TARGET_SPEEDS: dict[str, tuple[float, ...]] = {
    "highway": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "blocked": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "merge": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "roundabout": (0.0, 4.0, 8.0, 12.0, 16.0),
    "intersection": (0.0, 3.0, 6.0, 9.0, 12.0),
}
SPEED_META = {"ACCELERATE": "FASTER", "DECELERATE": "SLOWER", "STOP": "SLOWER"}  # KEEP: no change
PATH_META = {"LEFT_CHANGE": "LANE_LEFT", "RIGHT_CHANGE": "LANE_RIGHT"}  # STRAIGHT and turns: follow the route
