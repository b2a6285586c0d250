"""Frame sources: frame-exact across backends, selections, and clear errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest

from vrecore.errors import ConfigError, SourceError
from vrecore.frames.video import open_video, ranges, select_frames


@pytest.mark.parametrize("fixture", ["bikes_video", "sample_video"])
def test_backends_are_frame_exact(request, fixture):
    path = request.getfixturevalue(fixture)
    with open_video(path, "decord") as dec, open_video(path, "pyav") as pyav:
        assert dec.num_frames == pyav.num_frames > 40
        assert dec.frame_shape == pyav.frame_shape
        n = dec.num_frames
        rng = np.random.default_rng(0)
        orders = [list(range(0, 16)), [n - 1, 0, n // 2, 3, n // 2 - 1, 7], rng.integers(0, n, 24).tolist(),
                  list(range(n - 10, n))]
        for ix in orders:
            a, b = dec.get_batch(ix), pyav.get_batch(ix)
            assert a.shape == (len(ix), *dec.frame_shape, 3) and a.dtype == np.uint8
            np.testing.assert_array_equal(a, b)
        # The same frame fetched alone, in a batch, and after a backwards seek is identical.
        k = n // 3
        np.testing.assert_array_equal(pyav.get_batch([k])[0], dec.get_batch([k + 5, k])[1])
        assert not np.array_equal(dec.get_batch([k])[0], dec.get_batch([k + 1])[0])


def test_image_folder(tmp_path, sample_video):
    from PIL import Image

    with open_video(sample_video) as v:
        frames = v.get_batch([0, 1, 2])
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"frame_{i + 8}.png")  # natural order: 8, 9, 10
    src = open_video(tmp_path)
    assert src.num_frames == 3 and src.fps is None
    np.testing.assert_array_equal(src.get_batch([2, 0]), frames[[2, 0]])


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="has no images"):
        open_video(tmp_path)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "0.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "1.png")
    with pytest.raises(SourceError, match="is 9x8 but the folder's first image is 8x8"):
        open_video(tmp_path).get_batch([1])


def test_missing_file():
    with pytest.raises(SourceError, match="video 'nope.mp4' does not exist; check the path"):
        open_video("nope.mp4")


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_garbage_file(tmp_path, backend):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="bad.mp4' cannot be read"):
        open_video(bad, backend)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_truncated_file(tmp_path, bikes_video, backend):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(bikes_video.read_bytes()[: bikes_video.stat().st_size // 2])
    with pytest.raises(SourceError, match="cut.mp4"):
        open_video(cut, backend)


def test_unknown_backend(sample_video):
    with pytest.raises(ConfigError, match="video_backend 'opencv' is not one of auto, decord, pyav"):
        open_video(sample_video, "opencv")


def test_out_of_range(sample_video):
    message = r"frame 48 is out of range .* 48 frames \(0\.\.48, end exclusive\)"
    with open_video(sample_video) as v, pytest.raises(SourceError, match=message):
        v.get_batch([1, 48])


def test_header_count_is_not_trusted(tmp_path):
    """A clip whose container claims more frames than it holds: the count comes from the packets."""
    import av

    path = tmp_path / "short.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    for backend in ("decord", "pyav"):
        with open_video(path, backend) as v:
            assert v.num_frames == 10
            last = v.get_batch([9])[0]
            assert abs(int(last.mean()) - 180) <= 3


@pytest.mark.parametrize("spec,expected", [
    (None, list(range(10))), ("all", list(range(10))), ("2..5", [2, 3, 4]), ("..3", [0, 1, 2]),
    ("7..", [7, 8, 9]), ("0..10:3", [0, 3, 6, 9]), ("..:5", [0, 5]), ([5, 1, 5], [1, 5]), (4, [4]),
    ("[1, 3]", [1, 3]),
])
def test_select_frames(spec, expected):
    assert select_frames(spec, 10).tolist() == expected


@pytest.mark.parametrize("spec,error,message", [
    ("0..11", SourceError, r"frames=0..11 is out of range: the video has 10 frames"),
    ("5..5", SourceError, "start < end"),
    ([3, 10], SourceError, r"frames=\[3,10\] has entries out of range \(10\): the video has 10 frames \(valid: 0..10, end ex"),
    ("8..2", ConfigError, r"frames=8..2 is reversed: .* write frames=2..8"),
    ("0-10", ConfigError, r"frames=0-10 is not a frame selection: a range is written with two dots, frames=0..10"),
    ([-1, 3, -7], SourceError, r"has entries out of range \(-7, -1\)"),
    ("-2..4", SourceError, r"frames=-2..4 is out of range"),
    ("a..b", ConfigError, "is not a frame selection; use A..B"),
    (True, ConfigError, "is not a frame selection"),
    ("0..10:0", ConfigError, r"frames=0..10:0: the step must be 1 or more \(every Nth frame\), got 0"),
    ("", ConfigError, r"frames='' selects nothing; use A..B"),
    ("  ", ConfigError, r"frames='' selects nothing"),
    ([], ConfigError, r"frames=\[\] selects no frames"),
    ("[]", ConfigError, r"frames='\[\]' selects no frames"),
])
def test_select_frames_errors(spec, error, message):
    with pytest.raises(error, match=message):
        select_frames(spec, 10)


@pytest.mark.parametrize("frames,text", [
    (range(44), "0..44"), ([3], "3"), ([3, 4], "3..5"), ([9, 0, 1, 2, 5, 7, 8], "0..3, 5, 7..10"), ([], ""),
])
def test_ranges_are_written_end_exclusive_like_a_selection(frames, text):
    assert ranges(list(frames)) == text
    for part in filter(None, text.split(", ")):  # each part selects exactly its frames
        assert set(select_frames(part, 50).tolist()) <= set(frames)
    assert sum(len(select_frames(p, 50)) for p in filter(None, text.split(", "))) == len(set(frames))
