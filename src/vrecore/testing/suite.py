"""The conformance suite a plugin's tests subclass: `class TestMine(RepresentationTestSuite)`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vrecore.graph.representation import Batch

# ============================================================================================
# Section: conformance suite for representation types (subclass it in a plugin's tests)
# ============================================================================================


class RepresentationTestSuite:
    """Checks every representation type must pass; a plugin's test subclasses it::

        class TestCanny(RepresentationTestSuite):
            type_name = "edges/canny"
            parameters = {"threshold1": 100}

    Override `dependency_arrays` for types with dependencies and `prepare` for learned types (e.g.
    to point them at test weights). Arrays are small; ``atol`` bounds batched-vs-unbatched drift.
    """

    type_name: str = ""
    parameters: dict[str, Any] = {}
    frame_shape: tuple[int, int] = (24, 32)
    batch: int = 3
    clip_length: int = 6
    """Frames of the random clip that types reading neighbour frames (`frame_offsets`) take them from."""
    atol: float = 1e-5
    entry_module: str | None = None
    """The plugin's entry module, checked to import without torch (None: derived from the provider)."""

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """Role → memory-form dependency arrays (n, H, W, C) for a batch of n frames."""
        return {}

    def dependency_representations(self) -> dict[str, Any]:
        """Role → Representation objects filling the roles (their output_spec is consulted)."""
        return {}

    def prepare(self, representation: Any, tmp_path: Path) -> None:
        """Called before `setup` (e.g. to set a local weights path)."""

    # -- helpers ---------------------------------------------------------------------------------
    def make(self, tmp_path: Path) -> Any:
        from vrecore.graph.registry import get_registry

        cls = get_registry().get(self.type_name).load()
        rep = cls(name="under_test", dependencies=self.dependency_representations(), **self.parameters)
        self.prepare(rep, tmp_path)
        if rep.learned:
            rep.setup("cpu")
        return rep

    def offsets(self) -> tuple[int, ...]:
        """The type's `frame_offsets` with these parameters (no set-up needed)."""
        from vrecore.graph.registry import get_registry

        cls = get_registry().get(self.type_name).load()
        return tuple(cls(name="under_test", dependencies=self.dependency_representations(),
                         **self.parameters).frame_offsets())

    def clip(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` random frames, smoothed a little so that images have structure (edges, regions)."""
        rng = np.random.default_rng(seed)
        frames = rng.integers(0, 256, (n, *self.frame_shape, 3), dtype=np.uint8)
        return ((frames.astype(np.uint16) + np.roll(frames, 1, axis=1) + np.roll(frames, 1, axis=2)) // 3
                ).astype(np.uint8)

    def batch_of(self, n: int, seed: int = 0, indices: np.ndarray | None = None) -> Batch:
        """A batch of ``n`` frames (or the frames ``indices`` of the clip): with neighbour frames, clamped
        to the clip as an export gives them, for a type that reads them."""
        offsets = self.offsets()
        frames = self.clip(max(n, self.clip_length) if offsets else n, seed)
        ix = np.arange(n) if indices is None else np.asarray(indices)
        deps = self.dependency_arrays(len(ix), np.random.default_rng(seed + 1))
        if not offsets:
            return Batch(indices=ix, frames=frames[ix], deps=deps)
        near = {d: np.clip(ix + d, 0, len(frames) - 1) for d in offsets}
        return Batch(indices=ix, frames=frames[ix], deps=deps, neighbours={d: frames[i] for d, i in near.items()},
                     neighbour_indices=near)

    def compute(self, rep: Any, batch: Batch) -> np.ndarray:
        out = np.asarray(rep.compute(batch))
        return rep.resize(out, self.frame_shape)

    # -- the checks ------------------------------------------------------------------------------
    def test_registered_by_a_plugin(self) -> None:
        from vrecore.graph.registry import get_registry

        entry = get_registry().types[self.type_name]
        assert entry.load().type_name == self.type_name, "the class's type_name must match its registration"

    def test_output_shape_dtype_and_images(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        spec = rep.output_spec()
        out = self.compute(rep, self.batch_of(self.batch))
        assert out.shape == (self.batch, *self.frame_shape, spec.channels)
        disk = rep.to_disk(out)
        assert disk.dtype == np.dtype(spec.disk_dtype)
        assert disk.shape[:3] == (self.batch, *self.frame_shape)
        images = rep.make_images(out)
        assert images.dtype == np.uint8 and images.shape == (self.batch, *self.frame_shape, 3)
        if spec.classes is not None:
            assert spec.colors is None or len(spec.colors) == len(spec.classes)

    def test_disk_round_trip(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        disk = rep.to_disk(self.compute(rep, self.batch_of(self.batch)))
        again = rep.to_disk(rep.from_disk(disk))
        np.testing.assert_array_equal(again, disk)

    def test_batched_equals_unbatched(self, tmp_path: Path) -> None:
        rep = self.make(tmp_path)
        # A type reading neighbours gets the whole clip, so that its last frames take the end rule too.
        n = self.clip_length if self.offsets() else self.batch
        batch = self.batch_of(n, seed=1)
        assert batch.frames is not None
        whole = self.compute(rep, batch)
        for i in range(n):
            one = Batch(indices=batch.indices[i:i + 1], frames=batch.frames[i:i + 1],
                         deps={k: (tuple(x[i:i + 1] for x in v) if isinstance(v, tuple) else v[i:i + 1])
                               for k, v in batch.deps.items()},
                         neighbours={d: f[i:i + 1] for d, f in batch.neighbours.items()},
                         neighbour_indices={d: ix[i:i + 1] for d, ix in batch.neighbour_indices.items()})
            np.testing.assert_allclose(self.compute(rep, one)[0].astype(np.float64),
                                        whole[i].astype(np.float64), atol=self.atol, rtol=0, equal_nan=True)

    def test_entry_module_imports_no_torch(self) -> None:
        import subprocess
        import sys

        from vrecore.graph.registry import get_registry

        entry = get_registry().types[self.type_name]
        module = self.entry_module or entry.provider.replace("-", "_")
        code = (f"import sys, {module}; from vrecore.graph.registry import get_registry; "
                f"get_registry().types['{self.type_name}'].load(); "
                f"print([m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "[]", r.stdout + r.stderr
