"""The web viewer in a real browser: headless Chromium shows live, changing MJPEG images."""
from __future__ import annotations

import json
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

# Top of the image grid in the page layout: title and stats line sit above it.
GRID_TOP = 62


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,600",
        *extra, url,
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
        frame[:40, :] = (0, 0, 200)
        viewer.send(i, frame, {"flipped": frame[:, ::-1].copy(), "negative": 255 - frame})
        viewer.send_summary(i, {"latency_ms": 3.0, "dropped": 0, "received": i + 1})
        i += 1
        time.sleep(1 / 30)


def _stats(viewer: WebViewerTarget) -> dict[str, Any]:
    return json.loads(urllib.request.urlopen(viewer.url + "stats.json", timeout=5).read())


def _grid(png: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB"))[GRID_TOP:, :, :].astype(np.int16)


def _has_frames(shot: np.ndarray) -> bool:
    # The page itself is dark grey; white bar / negative image and the blue band come from frames.
    bright = (shot.min(axis=2) > 200).sum()
    blue = ((shot[:, :, 2] > 150) & (shot[:, :, 0] < 60)).sum()
    return bool(bright > 2000 and blue > 2000)


def test_browser_shows_live_changing_streams(tmp_path: Path) -> None:
    viewer = WebViewerTarget(port=0)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(viewer, stop), daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 5
        while len(viewer.stream_names()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        parts_before = sum(_stats(viewer)["parts_sent"].values())

        shots = []
        for k in range(2):
            for attempt in range(3):  # a loaded machine may paint before the first part lands
                png = tmp_path / f"shot{k}-{attempt}.png"
                _chromium(tmp_path, viewer.url, f"--screenshot={png}")
                shot = _grid(png)
                if _has_frames(shot):
                    break
            shots.append(shot)
            time.sleep(0.3)

        parts = _stats(viewer)["parts_sent"]
        assert set(parts) == {"input", "flipped", "negative"}, parts  # the browser pulled every stream
        assert sum(parts.values()) > parts_before

        for shot in shots:
            assert _has_frames(shot), "the screenshot shows no video frames"
        changed = np.abs(shots[0] - shots[1]).max(axis=2) > 64
        assert changed.sum() > 500, "the images did not change between the two screenshots"

        for _attempt in range(3):
            # The virtual time budget lets the page's timers and its /stats.json fetch run
            # before the DOM is dumped.
            dom = _chromium(tmp_path, viewer.url, "--dump-dom", "--virtual-time-budget=3000")
            if "frames/s" in dom:
                break
        assert 'id="stats">' in dom and "frames/s" in dom and "latency 3.0 ms" in dom  # JS polled /stats.json
        for name in ("input", "flipped", "negative"):
            assert f'src="/stream/{name}.mjpg"' in dom
    finally:
        stop.set()
        feeder.join(2)
        viewer.close()
