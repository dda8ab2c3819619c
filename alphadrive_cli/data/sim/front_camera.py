"""The front-camera view: a pinhole render of the simulator's state from the driver's seat, looking ahead.

numpy projects and clips (ground points and 3-D boxes into a camera with a configurable field of view,
height and pitch), PIL fills the polygons, painter's order (road, markings, then vehicles far to near),
drawn at ``SUPERSAMPLE`` times the image size and reduced for smooth edges. The road surface, lane
markings (striped and continuous, as highway-env draws them) and road edges come from the road network;
vehicles are shaded boxes at their true length and width. Same simulator state, same pixels.

Coordinates are highway-env's ground plane (x, y with y pointing down on its screen, so a heading ``h``
has the driver's right at ``(-sin h, cos h)``) and z up.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from highway_env.road.lane import AbstractLane, LineType, StraightLane
from highway_env.road.road import Road
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject
from PIL import Image, ImageDraw

from alphadrive_cli.config.schemas import FrontCameraConfig

SUPERSAMPLE = 2
NEAR_M = 0.3  # the near clipping plane
DRIVER_AHEAD_M = 0.5  # the driver's eye is this far ahead of the vehicle's centre
SAMPLE_M = 2.0  # lanes are drawn as quads this long
LONG_LANE_M = 400.0  # a longer lane is drawn only around the camera
MARKING_WIDTH_M = 0.15
STRIPE_SPACING_M, STRIPE_LENGTH_M = 4.33, 3.0  # highway-env's dashed lines
CAR_HEIGHT_M, OBSTACLE_HEIGHT_M = 1.5, 1.0
WINDOW_BAND = (0.55, 0.88)  # a car's windows: this share of its height, inset from the face's ends
WINDOW_INSET = 0.12
WINDOW_COLOUR = (38, 46, 58)
SKY_TOP, SKY_HORIZON = np.array([110, 150, 205]), np.array([205, 218, 232])
GROUND_FAR, GROUND_NEAR = np.array([120, 135, 105]), np.array([86, 112, 70])
ROAD, MARKING = (88, 88, 94), (232, 232, 226)
OBSTACLE_COLOUR = (205, 80, 40)
CAR_COLOURS = ((200, 200, 0), (100, 200, 255), (220, 220, 220), (170, 40, 40), (60, 60, 70), (40, 90, 170))
LIGHT = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on the ground plane: eye position, heading (rad), height and pitch, focal length in px."""

    x: float
    y: float
    heading: float
    height: float
    pitch: float
    focal: float
    size: int

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(n, 3)`` as camera coordinates ``(n, 3)``: right, up, forward."""
        dx, dy = points[:, 0] - self.x, points[:, 1] - self.y
        cos_h, sin_h = math.cos(self.heading), math.sin(self.heading)
        right = -sin_h * dx + cos_h * dy
        ahead = cos_h * dx + sin_h * dy
        up = points[:, 2] - self.height
        cos_p, sin_p = math.cos(self.pitch), math.sin(self.pitch)  # pitched down by ``pitch``
        return np.stack([right, up * cos_p + ahead * sin_p, ahead * cos_p - up * sin_p], axis=1)

    def to_pixels(self, camera_points: np.ndarray) -> np.ndarray:
        """Camera points in front of the near plane as pixel coordinates ``(n, 2)``."""
        centre = self.size / 2
        depth = camera_points[:, 2]
        return np.stack(
            [centre + self.focal * camera_points[:, 0] / depth, centre - self.focal * camera_points[:, 1] / depth],
            axis=1,
        )

    @property
    def horizon_row(self) -> float:
        """The image row of the horizon (points at infinity on the ground)."""
        return self.size / 2 - self.focal * math.tan(self.pitch)


def clip_near(polygon: np.ndarray) -> np.ndarray:
    """The part of a camera-space polygon ``(n, 3)`` in front of the near plane (Sutherland-Hodgman)."""
    kept: list[np.ndarray] = []
    for start, end in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        start_in, end_in = start[2] >= NEAR_M, end[2] >= NEAR_M
        if start_in:
            kept.append(start)
        if start_in != end_in:
            kept.append(start + (end - start) * (NEAR_M - start[2]) / (end[2] - start[2]))
    return np.array(kept)


class Painter:
    """Fills world-space polygons into an image through a camera."""

    def __init__(self, camera: Camera, background: Image.Image) -> None:
        self.camera = camera
        self.image = background.copy()
        self.draw = ImageDraw.Draw(self.image)

    def quads(self, corners: np.ndarray, colour: tuple[int, int, int]) -> None:
        """Fill ``(m, 4, 3)`` world quads with one colour (quads behind the camera are skipped)."""
        if not len(corners):
            return
        camera_points = self.camera.to_camera(corners.reshape(-1, 3)).reshape(-1, 4, 3)
        depth = camera_points[:, :, 2]
        whole = (depth >= NEAR_M).all(axis=1)
        for quad in self.camera.to_pixels(camera_points[whole].reshape(-1, 3)).reshape(-1, 4, 2):
            self.draw.polygon([tuple(point) for point in quad], fill=colour)
        for quad in camera_points[~whole & (depth >= NEAR_M).any(axis=1)]:
            self.polygon(clip_near(quad), colour)

    def polygon(self, camera_points: np.ndarray, colour: tuple[int, int, int]) -> None:
        """Fill one camera-space polygon already in front of the near plane."""
        if len(camera_points) >= 3:
            self.draw.polygon([tuple(point) for point in self.camera.to_pixels(camera_points)], fill=colour)


@functools.lru_cache(maxsize=8)
def background(size: int, horizon_row: float) -> Image.Image:
    """Sky fading to the horizon above, ground darkening towards the camera below."""
    rows = np.arange(size, dtype=float)[:, None]
    sky_mix = np.clip(rows / max(horizon_row, 1.0), 0, 1)
    ground_mix = np.clip((rows - horizon_row) / max(size - horizon_row, 1.0), 0, 1)
    sky = SKY_TOP + (SKY_HORIZON - SKY_TOP) * sky_mix
    ground = GROUND_FAR + (GROUND_NEAR - GROUND_FAR) * ground_mix
    column = np.where(rows < horizon_row, sky, ground)
    return Image.fromarray(np.repeat(column[:, None, :], size, axis=1).astype(np.uint8))


def lane_points(lane: AbstractLane, s: np.ndarray, lateral: float) -> np.ndarray:
    """Ground points ``(n, 2)`` of a lane at longitudinal positions ``s`` and one lateral offset (m, right positive)."""
    if isinstance(lane, StraightLane):
        return lane.start + s[:, None] * lane.direction + lateral * lane.direction_lateral
    return np.array([lane.position(float(value), lateral) for value in s]).reshape(-1, 2)


def ground_quads(lane: AbstractLane, starts: np.ndarray, ends: np.ndarray, left: float, right: float) -> np.ndarray:
    """Ground quads ``(n, 4, 3)`` from ``starts[i]`` to ``ends[i]`` along a lane, between two lateral offsets."""
    corners = np.stack(
        [
            lane_points(lane, starts, left),
            lane_points(lane, ends, left),
            lane_points(lane, ends, right),
            lane_points(lane, starts, right),
        ],
        axis=1,
    )
    return np.concatenate([corners, np.zeros((*corners.shape[:2], 1))], axis=2)


def strip(lane: AbstractLane, s: np.ndarray, left: float, right: float) -> np.ndarray:
    """Ground quads ``(n - 1, 4, 3)`` between two lateral offsets along consecutive positions ``s``."""
    return ground_quads(lane, s[:-1], s[1:], left, right)


def visible_span(lane: AbstractLane, camera: Camera, range_m: float) -> tuple[float, float] | None:
    """The longitudinal span of a lane worth drawing, or None when the lane is out of range."""
    s_camera, lateral = lane.local_coordinates(np.array([camera.x, camera.y]))
    if lane.length <= LONG_LANE_M:
        start, end = 0.0, float(lane.length)
    else:
        if abs(lateral) > range_m:
            return None
        start, end = max(0.0, s_camera - SAMPLE_M * 4), min(float(lane.length), s_camera + range_m)
    ends = lane_points(lane, np.array([start, (start + end) / 2, end]), 0.0)
    if np.hypot(ends[:, 0] - camera.x, ends[:, 1] - camera.y).min() > range_m + (end - start) / 2:
        return None
    return (start, end) if end > start else None


def samples(start: float, end: float, step: float) -> np.ndarray:
    """``start``, ``end`` and every ``step`` between."""
    return np.unique(np.concatenate([np.arange(start, end, step), [end]]))


def lane_markings(lane: AbstractLane, span: tuple[float, float]) -> Iterator[np.ndarray]:
    """Marking quads of both sides of a lane (side 0 is its left edge, as in highway-env)."""
    start, end = span
    for side, line in enumerate(lane.line_types):
        offset = (side - 0.5) * lane.width_at(start)
        left, right = offset - MARKING_WIDTH_M / 2, offset + MARKING_WIDTH_M / 2
        if line in (LineType.CONTINUOUS, LineType.CONTINUOUS_LINE):
            yield strip(lane, samples(start, end, SAMPLE_M), left, right)
        elif line == LineType.STRIPED:
            first = math.floor(start / STRIPE_SPACING_M) * STRIPE_SPACING_M
            dashes = np.arange(first, end, STRIPE_SPACING_M)
            starts, ends = np.clip(dashes, start, end), np.clip(dashes + STRIPE_LENGTH_M, start, end)
            drawn = ends > starts
            yield ground_quads(lane, starts[drawn], ends[drawn], left, right)


_CAR_COLOURS: weakref.WeakKeyDictionary[RoadObject, tuple[int, int, int]] = weakref.WeakKeyDictionary()
_COLOURS_GIVEN: weakref.WeakKeyDictionary[Road, int] = weakref.WeakKeyDictionary()


def object_colour(road: Road, thing: RoadObject) -> tuple[int, int, int]:
    """A car keeps the colour it was first drawn in (dealt in order of appearance); obstacles are orange."""
    if not isinstance(thing, Vehicle):
        return OBSTACLE_COLOUR
    if thing not in _CAR_COLOURS:
        given = _COLOURS_GIVEN.get(road, 0)
        _CAR_COLOURS[thing] = CAR_COLOURS[given % len(CAR_COLOURS)]
        _COLOURS_GIVEN[road] = given + 1
    return _CAR_COLOURS[thing]


def box_faces(thing: RoadObject, height: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The five outer faces (four sides and the top) of an object's box: ``(corners (4, 3), outward normal)``."""
    forward = np.array([math.cos(thing.heading), math.sin(thing.heading), 0.0])
    right = np.array([-forward[1], forward[0], 0.0])
    up = np.array([0.0, 0.0, 1.0])
    centre = np.array([thing.position[0], thing.position[1], 0.0])
    half_length, half_width = thing.LENGTH / 2, thing.WIDTH / 2

    def corner(along: float, across: float, z: float) -> np.ndarray:
        return centre + along * half_length * forward + across * half_width * right + z * up

    faces = []
    for normal, along, across in ((forward, 1, None), (-forward, -1, None), (right, None, 1), (-right, None, -1)):
        if along is not None:
            ground = [corner(along, -1, 0), corner(along, 1, 0)]
        else:
            ground = [corner(-1, across, 0), corner(1, across, 0)]
        faces.append((np.array([*ground, ground[1] + height * up, ground[0] + height * up]), normal))
    top = [corner(-1, -1, height), corner(1, -1, height), corner(1, 1, height), corner(-1, 1, height)]
    faces.append((np.array(top), up))
    return faces


def window(face: np.ndarray) -> np.ndarray:
    """The window quad of a side face ``(bottom start, bottom end, top end, top start)``."""
    bottom_start, bottom_end, top_end = face[0], face[1], face[2]
    along, up = bottom_end - bottom_start, top_end - bottom_end
    low, high = WINDOW_BAND
    start, end = bottom_start + WINDOW_INSET * along, bottom_start + (1 - WINDOW_INSET) * along
    return np.array([start + low * up, end + low * up, end + high * up, start + high * up])


def shaded(colour: tuple[int, int, int], normal: np.ndarray) -> tuple[int, int, int]:
    """A face's colour under a fixed sun: 55 % ambient plus 45 % diffuse."""
    light = 0.55 + 0.45 * max(0.0, float(normal @ LIGHT))
    return tuple(int(min(255, channel * light)) for channel in colour)


def draw_objects(painter: Painter, road: Road, ego: Vehicle, range_m: float) -> None:
    """Vehicles and obstacles (not the ego) as boxes, far to near, back faces culled."""
    camera = painter.camera
    eye = np.array([camera.x, camera.y, camera.height])
    things = [thing for thing in [*road.vehicles, *road.objects] if thing is not ego]
    distances = [math.hypot(thing.position[0] - camera.x, thing.position[1] - camera.y) for thing in things]
    for distance, thing in sorted(zip(distances, things, strict=True), key=lambda item: -item[0]):
        if distance > range_m:
            continue
        height = CAR_HEIGHT_M if isinstance(thing, Vehicle) else OBSTACLE_HEIGHT_M
        colour = object_colour(road, thing)
        for corners, normal in box_faces(thing, height):
            if normal @ (eye - corners.mean(axis=0)) > 0:
                painter.quads(corners[None], shaded(colour, normal))
                if isinstance(thing, Vehicle) and normal[2] == 0:
                    painter.quads(window(corners)[None], shaded(WINDOW_COLOUR, normal))


def front_view(road: Road, ego: Vehicle, config: FrontCameraConfig, image_px: int) -> Image.Image:
    """The view from the ego's driver seat along its heading, ``image_px`` square."""
    size = image_px * SUPERSAMPLE
    focal = (size / 2) / math.tan(math.radians(config.fov_deg) / 2)
    heading = float(ego.heading)
    camera = Camera(
        x=float(ego.position[0]) + DRIVER_AHEAD_M * math.cos(heading),
        y=float(ego.position[1]) + DRIVER_AHEAD_M * math.sin(heading),
        heading=heading,
        height=config.height_m,
        pitch=math.radians(config.pitch_deg),
        focal=focal,
        size=size,
    )
    painter = Painter(camera, background(size, camera.horizon_row))
    lanes = [lane for ends in road.network.graph.values() for lanes in ends.values() for lane in lanes]
    spans = [(lane, visible_span(lane, camera, config.range_m)) for lane in lanes]
    spans = [(lane, span) for lane, span in spans if span is not None]
    for lane, (start, end) in spans:
        half = lane.width_at(start) / 2
        painter.quads(strip(lane, samples(start, end, SAMPLE_M), -half, half), ROAD)
    for lane, span in spans:
        for quads in lane_markings(lane, span):
            painter.quads(quads, MARKING)
    draw_objects(painter, road, ego, config.range_m)
    return painter.image.resize((image_px, image_px), Image.Resampling.BOX)
