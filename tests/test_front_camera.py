"""The front-camera view: pinhole geometry, near-plane clipping, and renders of real highway-env scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from highway_env.vehicle.behavior import IDMVehicle

from alphadrive_cli.config.schemas import FrontCameraConfig, RenderConfig
from alphadrive_cli.data.sim import front_camera
from alphadrive_cli.data.sim.front_camera import NEAR_M, Camera, clip_near, front_view
from alphadrive_cli.data.sim.render import png_bytes, render_views
from alphadrive_cli.data.sim.scenarios import SCENARIOS, install_expert, isolated_vehicle_defaults, make_env

SIZE = 200


def test_a_ground_point_ahead_projects_below_the_centre_by_focal_times_height_over_distance() -> None:
    camera = Camera(x=0.0, y=0.0, heading=0.0, height=1.5, pitch=0.0, focal=100.0, size=SIZE)
    [[u, v]] = camera.to_pixels(camera.to_camera(np.array([[10.0, 0.0, 0.0]])))
    assert u == pytest.approx(100.0) and v == pytest.approx(100.0 + 100.0 * 1.5 / 10.0)
    # highway-env's y points to the driver's right when heading along +x
    [[u_right, _]] = camera.to_pixels(camera.to_camera(np.array([[10.0, 2.0, 0.0]])))
    assert u_right == pytest.approx(100.0 + 100.0 * 2.0 / 10.0)
    pitched = Camera(x=0.0, y=0.0, heading=math.pi / 2, height=1.5, pitch=math.radians(10), focal=100.0, size=SIZE)
    [[_, far]] = pitched.to_pixels(pitched.to_camera(np.array([[0.0, 1e6, 0.0]])))  # far along the heading
    assert far == pytest.approx(pitched.horizon_row, abs=0.01) and pitched.horizon_row < 100.0


def test_clipping_keeps_only_what_lies_in_front_of_the_near_plane() -> None:
    quad = np.array([[-1.0, -1.5, -2.0], [1.0, -1.5, -2.0], [1.0, -1.5, 5.0], [-1.0, -1.5, 5.0]])
    clipped = clip_near(quad)
    assert len(clipped) == 4 and (clipped[:, 2] >= NEAR_M - 1e-9).all()
    assert sorted(set(np.round(clipped[:, 2], 6))) == [NEAR_M, 5.0]


def _scene(name: str, steps: int = 10):
    scenario = SCENARIOS[name]
    render = RenderConfig(image_size=SIZE)
    env = make_env(scenario, render.bev, SIZE, 20.0)
    env.reset(seed=1)
    ego = install_expert(env, scenario, scenario.destinations[0] if scenario.destinations else None)
    if scenario.setup is not None:
        scenario.setup(env, ego)
    for _ in range(steps):
        env.step(1)
    return env, ego


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_renders_sky_above_and_road_under_the_ego(name: str) -> None:
    with isolated_vehicle_defaults():
        env, ego = _scene(name)
        try:
            render = RenderConfig(image_size=SIZE)
            [image] = render_views(env, render)
            again = render_views(env, render)[0]
        finally:
            env.close()
    pixels = np.asarray(image).astype(int)
    assert pixels.shape == (SIZE, SIZE, 3)
    sky = pixels[2, SIZE // 2]
    assert sky[2] > sky[0] + 40, "the top row should be sky"
    road = pixels[-3, SIZE // 2]
    assert np.abs(road - np.array(front_camera.ROAD)).max() < 25, "the ego stands on the road"
    assert png_bytes(image) == png_bytes(again)  # deterministic


def test_a_car_ahead_in_the_ego_lane_is_drawn_in_the_middle_where_perspective_puts_it() -> None:
    config = FrontCameraConfig(pitch_deg=0.0)
    with isolated_vehicle_defaults():
        env, ego = _scene("highway", steps=0)
        try:
            env.road.vehicles = [ego]
            empty = np.asarray(front_view(env.road, ego, config, SIZE)).astype(int)
            lane = env.road.network.get_lane(ego.lane_index)
            ahead_m = 20.0
            s, _ = lane.local_coordinates(ego.position)
            other = IDMVehicle(env.road, lane.position(s + ahead_m, 0.0), lane.heading_at(s + ahead_m), speed=0.0)
            env.road.vehicles = [ego, other]
            with_car = np.asarray(front_view(env.road, ego, config, SIZE)).astype(int)
        finally:
            env.close()
    changed = np.argwhere(np.abs(with_car - empty).sum(axis=2) > 30)
    assert len(changed) > 50, "the car is not drawn"
    rows, columns = changed[:, 0], changed[:, 1]
    focal = (SIZE / 2) / math.tan(math.radians(config.fov_deg) / 2)
    rear_m = ahead_m - other.LENGTH / 2 - front_camera.DRIVER_AHEAD_M
    lateral = lane.local_coordinates(ego.position)[1]  # the ego is not exactly on the lane's centre line
    assert abs(columns.mean() - (SIZE / 2 - focal * lateral / rear_m)) < 4
    assert rows.max() == pytest.approx(SIZE / 2 + focal * config.height_m / rear_m, abs=2)
    width_px = columns.max() - columns.min()
    assert width_px == pytest.approx(focal * other.WIDTH / rear_m, abs=3)  # drawn at its true width
