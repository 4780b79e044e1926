#!/usr/bin/env bash
# End-to-end check of app.py in headless Chromium (see scripts/browser_check.py); run by .ci/run.
# Installs Debian's chromium and chromium-driver and Selenium when missing (Selenium then uses
# /usr/bin/chromedriver; it downloads nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || [ ! -x /usr/bin/chromedriver ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
.venv/bin/python -c "import selenium" 2>/dev/null || .venv/bin/python -m pip install --quiet selenium
export SE_OFFLINE=true  # Selenium Manager: use the given driver, never fetch one
.venv/bin/python scripts/browser_check.py "$@"
