"""The web viewer in a real browser: headless Chromium shows the live tiles, each with its milliseconds."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vrecore.streaming import WebViewerTarget

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium) for a headless browser"
    ),
]

BLUE = (0, 0, 200)
TIMINGS = {"flipped": 4.0, "negative": 7.5}


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,700",
        "--force-device-scale-factor=1", *extra, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode(errors="replace")


def _feed(viewer: WebViewerTarget, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        frame = np.zeros((240, 320, 3), np.uint8)
        x = (i * 11) % 300
        frame[:, x:x + 20] = (255, 255, 255)
        frame[:40, :] = BLUE
        # "broken" failed on this frame: the processor shows it black and says so in the summary.
        viewer.send(i, frame, {"flipped": frame[:, ::-1].copy(), "negative": 255 - frame,
                               "broken": np.zeros_like(frame)})
        viewer.send_summary(i, {"latency_ms": 3.0, "dropped": 0, "received": i + 1, "summary": {
            **{name: {"ms": ms} for name, ms in TIMINGS.items()}, "broken": {"error": "RuntimeError: on fire"}}})
        i += 1
        time.sleep(1 / 30)


def _stats(viewer: WebViewerTarget) -> dict[str, Any]:
    return json.loads(urllib.request.urlopen(viewer.url + "stats.json", timeout=5).read())


def _screenshot(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _blue(img: np.ndarray) -> np.ndarray:
    return (img[..., 2] > 150) & (img[..., 0] < 60) & (img[..., 1] < 60)


def test_browser_shows_live_tiles_with_timings(tmp_path: Path) -> None:
    viewer = WebViewerTarget(port=0)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(viewer, stop), daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 5
        while len(viewer.stream_names()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = _stats(viewer)
        layout = stats["layout"]
        assert (layout["rows"], layout["cols"]) == (2, 2)  # four 4:3 tiles: a square grid
        tiles = {t["name"]: t for t in layout["tiles"]}
        assert list(tiles) == ["input", "flipped", "negative", "broken"]
        label_h = tiles["input"]["label_h"]

        shots = []
        for k in range(2):
            for attempt in range(3):  # a loaded machine may paint before the first part lands
                png = tmp_path / f"shot{k}-{attempt}.png"
                _chromium(tmp_path, viewer.url, f"--screenshot={png}")
                shot = _screenshot(png)
                if _blue(shot).sum() > 2000:
                    break
            shots.append(shot)
            time.sleep(0.3)

        for shot in shots:
            blue = _blue(shot)
            assert blue.sum() > 2000, "the screenshot shows no video frames"
            # The input's blue band starts right under its name strip: that places the grid.
            ys, xs = np.nonzero(blue)
            x0, y0 = int(xs.min()), int(ys.min()) - label_h

            def body(name: str, shot: np.ndarray = shot, x0: int = x0, y0: int = y0) -> np.ndarray:
                t = tiles[name]
                top, left = y0 + t["y"] + t["label_h"], x0 + t["x"]
                return shot[top:top + t["h"], left:left + t["w"]]

            for name in ("input", "flipped"):
                assert _blue(body(name)[5:35]).mean() > 0.95, f"{name}: no blue band at the top of its tile"
            band = body("negative")[5:35]  # the negative of blue is yellow
            assert (band[..., 0] > 200).mean() > 0.95 and (band[..., 2] < 100).mean() > 0.95
            assert body("broken").mean() < 15  # black: the failed representation keeps its place
            for name, t in tiles.items():  # a grey name strip over each tile, between name and time
                strip = shot[y0 + t["y"] + 3:y0 + t["y"] + label_h - 3, x0 + t["x"] + 120:x0 + t["x"] + 200]
                assert np.abs(strip - 32).max() < 12, f"{name}: no name strip above the tile"
            empty_right = shot[y0:y0 + layout["height"], x0 + layout["width"] + 2:x0 + layout["width"] + 40]
            assert not _blue(empty_right).any()  # the grid ends where the layout says

        changed = np.abs(shots[0] - shots[1]).max(axis=2) > 64
        assert changed.sum() > 500, "the images did not change between the two screenshots"
        assert _stats(viewer)["tiles_sent"] > stats["tiles_sent"]  # the browser pulled the tile stream

        for _attempt in range(3):
            # The virtual time budget lets the page's timers and its /stats.json fetch run
            # before the DOM is dumped.
            dom = _chromium(tmp_path, viewer.url, "--dump-dom", "--virtual-time-budget=3000")
            if "frames/s" in dom and "7.5 ms" in dom:
                break
        assert 'id="stats">' in dom and "frames/s" in dom and "latency 3.0 ms" in dom  # JS polled /stats.json
        assert 'src="/tiles.mjpg"' in dom
        spans = dict(re.findall(r'<span class="ms[^"]*" data-name="([^"]+)"[^>]*>([^<]*)</span>', dom))
        assert spans == {"input": "", "flipped": "4.0 ms", "negative": "7.5 ms", "broken": "failed"}, spans
    finally:
        stop.set()
        feeder.join(2)
        viewer.close()
