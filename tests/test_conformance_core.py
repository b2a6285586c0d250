"""Core types pass the conformance suite that plugins use too."""
from vrecore.testing import RepresentationTestSuite


class TestHSV(RepresentationTestSuite):
    type_name = "color/hsv"
    entry_module = "vrecore"
    def dependency_arrays(self, n, rng):
        return {"rgb": rng.integers(0, 256, (n, *self.frame_shape, 3), dtype="uint8")}
class TestRGB(RepresentationTestSuite):
    type_name = "color/rgb"
    entry_module = "vrecore"
