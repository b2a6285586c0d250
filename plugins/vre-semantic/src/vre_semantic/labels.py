"""Label sets (class names and colours) and the shipped label-mapping tables; plain data, no torch."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = [
    "COCO_PANOPTIC_CLASSES",
    "COCO_PANOPTIC_COLORS",
    "DRONESCAPES_CLASSES",
    "DRONESCAPES_COLORS",
    "MAPILLARY_VISTAS_CLASSES",
    "MAPILLARY_VISTAS_COLORS",
    "TABLES",
    "load_table",
    "palette",
]

DRONESCAPES_CLASSES: tuple[str, ...] = (
    "land", "forest", "residential", "road", "little-objects", "water", "sky", "hill",
)
"""The 8 Dronescapes classes, in the seed's (and PHG-MAE-Distil's) channel order."""

DRONESCAPES_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 0), (0, 127, 0), (255, 255, 0), (255, 255, 255), (255, 0, 0), (0, 0, 255), (0, 255, 255), (127, 127, 63),
)
"""RGB colour of each Dronescapes class (the seed's ``color_map``)."""

COCO_PANOPTIC_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff",
    "floor-wood", "flower", "fruit", "gravel", "house", "light", "mirror-stuff", "net", "pillow", "platform",
    "playingfield", "railroad", "river", "road", "roof", "sand", "sea", "shelf", "snow", "stairs", "tent", "towel",
    "wall-brick", "wall-stone", "wall-tile", "wall-wood", "water-other", "window-blind", "window-other",
    "tree-merged", "fence-merged", "ceiling-merged", "sky-other-merged", "cabinet-merged", "table-merged",
    "floor-other-merged", "pavement-merged", "mountain-merged", "grass-merged", "dirt-merged", "paper-merged",
    "food-other-merged", "building-other-merged", "rock-merged", "wall-other-merged", "rug-merged",
)
"""The 133 COCO panoptic classes (80 things, then 53 stuff), in Mask2Former's channel order."""


COCO_PANOPTIC_COLORS: tuple[tuple[int, int, int], ...] = (
    (220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230), (106, 0, 228), (0, 60, 100), (0, 80, 100), (0, 0, 70),
    (0, 0, 192), (250, 170, 30), (100, 170, 30), (220, 220, 0), (175, 116, 175), (250, 0, 30), (165, 42, 42),
    (255, 77, 255), (0, 226, 252), (182, 182, 255), (0, 82, 0), (120, 166, 157), (110, 76, 0), (174, 57, 255),
    (199, 100, 0), (72, 0, 118), (255, 179, 240), (0, 125, 92), (209, 0, 151), (188, 208, 182), (0, 220, 176),
    (255, 99, 164), (92, 0, 73), (133, 129, 255), (78, 180, 255), (0, 228, 0), (174, 255, 243), (45, 89, 255),
    (134, 134, 103), (145, 148, 174), (255, 208, 186), (197, 226, 255), (171, 134, 1), (109, 63, 54),
    (207, 138, 255), (151, 0, 95), (9, 80, 61), (84, 105, 51), (74, 65, 105), (166, 196, 102), (208, 195, 210),
    (255, 109, 65), (0, 143, 149), (179, 0, 194), (209, 99, 106), (5, 121, 0), (227, 255, 205), (147, 186, 208),
    (153, 69, 1), (3, 95, 161), (163, 255, 0), (119, 0, 170), (0, 182, 199), (0, 165, 120), (183, 130, 88),
    (95, 32, 0), (130, 114, 135), (110, 129, 133), (166, 74, 118), (219, 142, 185), (79, 210, 114), (178, 90, 62),
    (65, 70, 15), (127, 167, 115), (59, 105, 106), (142, 108, 45), (196, 172, 0), (95, 54, 80), (128, 76, 255),
    (201, 57, 1), (246, 0, 122), (191, 162, 208), (255, 255, 128), (147, 211, 203), (150, 100, 100),
    (168, 171, 172), (146, 112, 198), (210, 170, 100), (92, 136, 89), (218, 88, 184), (241, 129, 0),
    (217, 17, 255), (124, 74, 181), (70, 70, 70), (255, 228, 255), (154, 208, 0), (193, 0, 92), (76, 91, 113),
    (255, 180, 195), (106, 154, 176), (230, 150, 140), (60, 143, 255), (128, 64, 128), (92, 82, 55),
    (254, 212, 124), (73, 77, 174), (255, 160, 98), (255, 255, 255), (104, 84, 109), (169, 164, 131),
    (225, 199, 255), (137, 54, 74), (135, 158, 223), (7, 246, 231), (107, 255, 200), (58, 41, 149),
    (183, 121, 142), (255, 73, 97), (107, 142, 35), (190, 153, 153), (146, 139, 141), (70, 130, 180),
    (134, 199, 156), (209, 226, 140), (96, 36, 108), (96, 96, 96), (64, 170, 64), (152, 251, 152), (208, 229, 228),
    (206, 186, 171), (152, 161, 64), (116, 112, 0), (0, 114, 143), (102, 102, 156), (250, 141, 255),
)
"""RGB colour of each COCO panoptic class (detectron2's palette, as the seed uses)."""


MAPILLARY_VISTAS_CLASSES: tuple[str, ...] = (
    "Bird", "Ground Animal", "Curb", "Fence", "Guard Rail", "Barrier", "Wall", "Bike Lane", "Crosswalk - Plain",
    "Curb Cut", "Parking", "Pedestrian Area", "Rail Track", "Road", "Service Lane", "Sidewalk", "Bridge",
    "Building", "Tunnel", "Person", "Bicyclist", "Motorcyclist", "Other Rider", "Lane Marking - Crosswalk",
    "Lane Marking - General", "Mountain", "Sand", "Sky", "Snow", "Terrain", "Vegetation", "Water", "Banner",
    "Bench", "Bike Rack", "Billboard", "Catch Basin", "CCTV Camera", "Fire Hydrant", "Junction Box", "Mailbox",
    "Manhole", "Phone Booth", "Pothole", "Street Light", "Pole", "Traffic Sign Frame", "Utility Pole",
    "Traffic Light", "Traffic Sign (Back)", "Traffic Sign (Front)", "Trash Can", "Bicycle", "Boat", "Bus", "Car",
    "Caravan", "Motorcycle", "On Rails", "Other Vehicle", "Trailer", "Truck", "Wheeled Slow", "Car Mount",
    "Ego Vehicle",
)
"""The 65 Mapillary Vistas v1.2 classes, in Mask2Former's channel order."""


MAPILLARY_VISTAS_COLORS: tuple[tuple[int, int, int], ...] = (
    (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153), (180, 165, 180), (90, 120, 150), (102, 102, 156),
    (128, 64, 255), (140, 140, 200), (170, 170, 170), (250, 170, 160), (96, 96, 96), (230, 150, 140),
    (128, 64, 128), (110, 110, 110), (244, 35, 232), (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60),
    (255, 0, 0), (255, 0, 100), (255, 0, 200), (200, 128, 128), (255, 255, 255), (64, 170, 64), (230, 160, 50),
    (70, 130, 180), (190, 255, 255), (152, 251, 152), (107, 142, 35), (0, 170, 30), (255, 255, 128), (250, 0, 30),
    (100, 140, 180), (220, 220, 220), (220, 128, 128), (222, 40, 40), (100, 170, 30), (40, 40, 40), (33, 33, 33),
    (100, 128, 160), (142, 0, 0), (70, 100, 150), (210, 170, 100), (153, 153, 153), (128, 128, 128), (0, 0, 80),
    (250, 170, 30), (192, 192, 192), (220, 220, 0), (140, 140, 20), (119, 11, 32), (150, 0, 255), (0, 60, 100),
    (0, 0, 142), (0, 0, 90), (0, 0, 230), (0, 80, 100), (128, 64, 64), (0, 0, 110), (0, 0, 70), (0, 0, 192),
    (32, 32, 32), (120, 10, 10),
)
"""RGB colour of each Mapillary Vistas class (the dataset's palette)."""


TABLES: tuple[str, ...] = ("mapillary_vistas_to_dronescapes", "coco_panoptic_to_dronescapes")
"""Names of the label-mapping tables shipped in ``vre_semantic/tables`` (see `load_table`)."""


def load_table(name: str) -> dict[str, Any]:
    """A shipped mapping table: ``mapping`` (source class -> target class), ``target_classes``, ``target_colors``."""
    if name not in TABLES:
        raise ValueError(f"unknown mapping table {name!r}; shipped tables: {', '.join(TABLES)} "
                         f"(or give a mapping source class -> target class)")
    text = resources.files("vre_semantic").joinpath("tables", f"{name}.json").read_text(encoding="utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` distinct, deterministic RGB colours (for label sets declared without colours)."""
    colors = []
    for i in range(n):
        # Golden-ratio hue steps keep neighbouring labels far apart on the colour wheel.
        h = (i * 0.618033988749895) % 1.0
        s, v = 0.65 + 0.35 * ((i // 7) % 2), 0.95 - 0.35 * ((i // 3) % 2)
        k = int(h * 6)
        f = h * 6 - k
        p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
        r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][k % 6]
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colors)
