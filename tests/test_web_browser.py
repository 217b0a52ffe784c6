"""The page in a real browser: Debian's headless Chromium driven by Playwright for Python.

A person's path through the page: choose files, watch the progress, compare
before and after, download one file and all of them; checked on the pixels and
the audio of what the browser saved. Saves a screenshot as a test artifact.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamguard import Config, DetectConfig
from streamguard.web.limits import Limits
from streamguard.web.server import serve_in_background

from .pixels import assert_destroyed, audio_packets, decode_rgb
from .test_images import _photo

CHROMIUM = os.environ.get("STREAMGUARD_CHROMIUM", "/usr/bin/chromium")
# No network here: without these Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = Config(detect=DetectConfig(preset="fast"))
SCREENSHOT_COPY = Path(__file__).resolve().parent.parent / "benchmarks" / "out" / "web_screenshot.png"


def _require_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium, or set STREAMGUARD_CHROMIUM)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs both, so CI must run this test")
        pytest.skip(reason)


def test_page_choose_progress_compare_download(tmp_path, face_clip):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    image, boxes = _photo()
    photo = tmp_path / "Beach day.jpg"
    Image.fromarray(image).save(photo, quality=95)
    original = np.asarray(Image.open(photo).convert("RGB"))
    clip = tmp_path / "interview.mp4"
    shutil.copyfile(face_clip[0], clip)
    notes = tmp_path / "notes.txt"
    notes.write_text("not media")

    with serve_in_background(Limits(), FAST, parent=tmp_path) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 1000})
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(srv.url)
            page.wait_for_selector("body[data-ready='1']")

            # Options as a person sets them: fast face search, default blur.
            page.locator("#detection label", has_text="Fast").click()
            expect(page.locator("#detection-hint")).to_contain_text("Quickest")
            page.set_input_files("#files", [str(photo), str(clip), str(notes)])

            bad = page.locator(".job", has_text="notes.txt")
            expect(bad).to_have_attribute("data-state", "rejected")
            expect(bad.locator(".message")).to_contain_text("not a supported file type")

            video = page.locator(".job", has_text="interview.mp4")
            # Live progress: percentage, frames, fps and time left while it runs.
            expect(video.locator(".stats")).to_contain_text("fps", timeout=30_000)
            expect(video).to_have_attribute("data-state", "done", timeout=60_000)
            expect(video.locator(".stats")).to_contain_text("45 frames")
            still = page.locator(".job", has_text="Beach day.jpg")
            expect(still).to_have_attribute("data-state", "done", timeout=30_000)
            # Its two faces are sure; any less certain find covered beside them is counted apart.
            expect(still.locator(".stats")).to_contain_text(
                re.compile(r"Done: (2 faces covered|\d+ regions covered \(2 sure faces, \d+ less certain\))"))
            expect(page.locator("#summary")).to_contain_text("2 done")

            # Before/after: the photo under a slider, the two videos side by side, both showing frames.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.compare-img img')]"
                ".every(i => i.complete && i.naturalWidth)"
            )
            slider = still.locator(".compare-img input[type=range]")
            slider.fill("35")
            assert still.locator(".compare-img").evaluate("e => e.style.getPropertyValue('--pos')") == "35%"
            videos = video.locator(".compare-vid video")
            expect(videos).to_have_count(2)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.compare-vid video')].every(v => v.readyState >= 2)",
                timeout=15_000,
            )
            assert video.locator("video.after").evaluate("v => v.muted") is False, (
                "the result plays its sound"
            )
            assert video.locator("video.before").evaluate("v => v.muted") is True
            # Show a moment with both faces, in step: seeking the result moves the original too.
            video.locator("video.after").evaluate("v => { v.currentTime = 0.8; }")
            page.wait_for_function(
                "() => { const [b, a] = document.querySelectorAll('.compare-vid video');"
                " return Math.abs(a.currentTime - 0.8) < 0.05 && Math.abs(b.currentTime - 0.8) < 0.15"
                " && !a.seeking && !b.seeking && a.readyState >= 2 && b.readyState >= 2; }"
            )
            # Let both players finish loading, so no spinner covers the picture in the screenshot.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.compare-vid video')]"
                ".every(v => v.networkState !== 2 && v.readyState >= 3)",
                timeout=10_000,
            )
            page.wait_for_timeout(500)

            shot = tmp_path / "web_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT_COPY)
            print(f"\nscreenshot: {shot} (copied to {SCREENSHOT_COPY})")

            # Download one file, as the browser saves it.
            with page.expect_download() as info:
                video.locator("a.download").click()
            saved = tmp_path / "saved" / info.value.suggested_filename
            info.value.save_as(saved)
            assert saved.name == "interview.anonymized.mp4"
            # Download all, as a zip.
            with page.expect_download() as info:
                page.locator("#download-all").click()
            zipped = tmp_path / "saved" / "all.zip"
            info.value.save_as(zipped)

            # Cancel a running video from the page.
            again = tmp_path / "again.mp4"
            shutil.copyfile(clip, again)
            page.set_input_files("#files", [str(again)])
            running = page.locator(".job", has_text="again.mp4")
            expect(running.locator(".stats")).to_contain_text("Frame", timeout=30_000)
            running.locator("button.cancel").click()
            expect(running).to_have_attribute("data-state", "cancelled", timeout=10_000)
            expect(running.locator(".message")).to_contain_text("nothing was kept")

            # A reload finds this tab's files again (the server kept them while the page followed them).
            page.reload()
            page.wait_for_selector("body[data-ready='1']")
            expect(page.locator(".job")).to_have_count(3)
            expect(page.locator(".job", has_text="interview.mp4")).to_have_attribute("data-state", "done")
            expect(page.locator(".job", has_text="interview.mp4").locator(".stats")).to_contain_text(
                "downloaded"
            )
            assert not problems, problems
        finally:
            browser.close()

    src, gt = face_clip
    frames_in, frames_out = decode_rgb(src), decode_rgb(saved)
    assert len(frames_out) == len(frames_in)
    for i in (0, len(gt.frames) // 2, len(gt.frames) - 1):
        for box in gt.frames[i].boxes:
            assert_destroyed(
                frames_in[i], frames_out[i], box, f"frame {i} of the video downloaded by the browser"
            )
    assert audio_packets(saved) == audio_packets(src), (
        "the downloaded video keeps its audio packet for packet"
    )
    with zipfile.ZipFile(zipped) as z:
        assert sorted(z.namelist()) == ["Beach day.anonymized.jpg", "interview.anonymized.mp4"]
        assert z.read("interview.anonymized.mp4") == saved.read_bytes()
        out = np.asarray(Image.open(z.open("Beach day.anonymized.jpg")).convert("RGB"))
    for box in boxes:
        assert_destroyed(original, out, box, "in the photo downloaded by the browser")
