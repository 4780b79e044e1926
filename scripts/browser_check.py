"""End-to-end check of app.py in a real browser: headless Chromium driven by Selenium.

    python scripts/browser_check.py [--ckpt CKPT] [--image PHOTO] [--screenshot OUT.png]

Starts ``app.py`` on a free port of 127.0.0.1 (with a tiny random-weight AirNet unless ``--ckpt``
names real weights), opens the page in headless Chromium (Debian's ``chromium`` and
``/usr/bin/chromedriver``; nothing is downloaded), uploads a photo, presses Restore, waits for
the input|result slider and the result file, and saves a screenshot. Every request the page
made is read from Chromium's performance log: any that left 127.0.0.1 fails the check.
Exit code 0 when all of it held; 1 with the reason otherwise. ``scripts/browser_check.sh``
installs what this needs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.cli import ArgumentParser, Range  # noqa: E402

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Check app.py in headless Chromium.")
    parser.add_argument("--ckpt", type=Path, default=None, help="weights (default: tiny random)")
    parser.add_argument("--image", type=Path, default=ROOT / "data/demo/31.png", help="upload")
    parser.add_argument(
        "--screenshot", type=Path, default=ROOT / "docs/app_screenshot.png", help="PNG to write"
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="browser binary")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver", help="driver binary")
    parser.add_argument(
        "--timeout",
        type=Range(float, above=0, maximum=3600),
        default=180,
        help="seconds for each wait",
    )
    return parser


def tiny_checkpoint(folder: Path) -> Path:
    """A random-weight AirNet of width 8 (the page, not the restoration, is under test)."""
    code = (
        "import sys, torch; from net import AirNet; torch.manual_seed(0); "
        "m = AirNet(n_feats=8, n_groups=1, n_blocks=1, queue_size=16); "
        "torch.save({'model': m.state_dict(), "
        "'args': {'n_feats': 8, 'n_groups': 1, 'n_blocks': 1}}, sys.argv[1])"
    )
    path = folder / "tiny.pth"
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app.py did not answer at {url} within {timeout:.0f} s")


def start_browser(args: argparse.Namespace, profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(args.chromedriver), options=options)


def outside_requests(driver: webdriver.Chrome) -> list[str]:
    """URLs the page requested from anywhere but 127.0.0.1 (or data:, blob: ...)."""
    outside = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        parsed = urlparse(url)
        if parsed.scheme not in LOCAL_SCHEMES and parsed.hostname not in ("127.0.0.1", None):
            outside.append(url)
    return outside


def text_of(driver: webdriver.Chrome, selector: str) -> str:
    """The text of an element, hidden parts included (``.text`` gives only what is drawn)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", selector
    )


def check_page(driver: webdriver.Chrome, url: str, args: argparse.Namespace) -> str:
    """Upload, restore, wait for the result; returns the status text shown in the page."""
    wait = WebDriverWait(driver, args.timeout)

    def step(name: str, condition):
        try:
            return wait.until(condition)
        except TimeoutException as error:
            raise RuntimeError(
                f"timed out after {args.timeout:.0f} s waiting for {name}"
            ) from error

    driver.get(url)
    upload = step("the upload field", lambda d: d.find_element(By.CSS_SELECTOR, "#images input"))
    upload.send_keys(str(args.image.resolve()))
    # Uploaded: the file list shows it with a link to the server's copy.
    step("the upload", lambda d: d.find_elements(By.CSS_SELECTOR, "#images a[href*='file=']"))
    driver.find_element(By.CSS_SELECTOR, "#restore").click()
    step("the result file", lambda d: d.find_elements(By.CSS_SELECTOR, "a[href$='_restored.png']"))
    images = step(
        "the slider's two images",
        lambda d: (
            [
                img
                for img in d.find_elements(By.CSS_SELECTOR, "#slider img")
                if img.get_attribute("src")
                and d.execute_script("return arguments[0].complete", img)
            ][:2]
            or None
        ),
    )
    if len(images) < 2:
        raise RuntimeError(f"the slider shows {len(images)} image(s), expected input and result")
    time.sleep(1)  # let the slider finish drawing before the screenshot
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(args.screenshot))
    return text_of(driver, "#status")


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="browser_check_") as tmp:
        tmp = Path(tmp)
        ckpt = args.ckpt or tiny_checkpoint(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = tmp / "app.log"
        command = [sys.executable, "app.py", "--ckpt", str(ckpt), "--port", str(port)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with open(log, "w") as out:
            server = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        driver = None
        try:
            wait_for_server(url, server, args.timeout)
            driver = start_browser(args, tmp / "profile")
            status = check_page(driver, url, args)
            outside = outside_requests(driver)
            if outside:
                raise RuntimeError(f"the page fetched from outside: {outside}")
            print(f"browser check passed: {status.strip()}; screenshot {args.screenshot}")
            return 0
        except (RuntimeError, TimeoutException, WebDriverException) as error:
            print(f"browser check FAILED: {type(error).__name__}: {error}", file=sys.stderr)
            if driver is not None:
                failed = args.screenshot.with_name(args.screenshot.stem + "_failed.png")
                failed.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(failed))
                print(f"page at the failure: {failed}", file=sys.stderr)
            print(f"--- app.py log ---\n{log.read_text()}", file=sys.stderr)
            return 1
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
