"""A record's images: the front camera (``front_camera``) and the ego-centred, heading-up top-down view."""

from __future__ import annotations

import io
import math

import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.vehicle.graphics import VehicleGraphics
from PIL import Image

from alphadrive_cli.config.schemas import RenderConfig
from alphadrive_cli.data.sim.front_camera import front_view
from alphadrive_cli.errors import StageFailure


def render_world(env: AbstractEnv) -> np.ndarray:
    """The off-screen top-down render around the ego; never a blank frame.

    highway-env stops drawing when ``SDL_VIDEODRIVER=dummy`` is set (a common headless setting), which
    would silently give black images; off-screen rendering needs no display, so drawing is re-enabled.
    The ego vehicle is drawn last and in the ego colour (junction rules recolour yielding vehicles),
    so it is always the green car.
    """
    env.vehicle.color = VehicleGraphics.EGO_COLOR
    vehicles = env.road.vehicles
    env.road.vehicles = [vehicle for vehicle in vehicles if vehicle is not env.vehicle] + [env.vehicle]
    try:
        frame = env.render()
        if env.viewer is not None and not env.viewer.enabled:
            env.viewer.enabled = True
            frame = env.render()
    finally:
        env.road.vehicles = vehicles  # the simulation's own order is left as it was
    if frame is None or not frame.any() or frame.std() == 0:
        raise StageFailure("the simulator rendered a blank frame; check the SDL/pygame installation")
    return frame


def heading_up_view(frame: np.ndarray, heading: float, image_px: int, ego_row: float) -> Image.Image:
    """Rotate a render centred on the ego so its heading points up, then crop with the ego at ``ego_row``.

    ``heading`` is highway-env's (radians, clockwise on screen, 0 = pointing right).
    """
    canvas = Image.fromarray(frame)
    rotated = canvas.rotate(
        math.degrees(heading) + 90.0, resample=Image.Resampling.BILINEAR, center=(canvas.width / 2, canvas.height / 2)
    )
    centre_x, centre_y = canvas.width / 2, canvas.height / 2
    left = round(centre_x - image_px / 2)
    top = round(centre_y - ego_row * image_px)
    return rotated.crop((left, top, left + image_px, top + image_px))


def render_views(env: AbstractEnv, render: RenderConfig) -> list[Image.Image]:
    """The configured views of the ego's current state, in ``render.views`` order."""
    images = []
    for view in render.views:
        if view == "front":
            images.append(front_view(env.road, env.vehicle, render.front, render.image_size))
        else:
            frame = render_world(env)
            images.append(heading_up_view(frame, env.vehicle.heading, render.image_size, render.bev.ego_row))
    return [image.convert("RGB") for image in images]


def png_bytes(image: Image.Image) -> bytes:
    """Encode as PNG (deterministic bytes for the same pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
