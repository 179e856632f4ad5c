#!/usr/bin/env bash
# Make sure a Chromium for `make test-browser` exists: Debian's `chromium` package when it does
# not. Playwright's own browser download is never used (`playwright install` fetches from a CDN
# that offline and locked-down machines cannot reach; apt works wherever packages install).
#   usage: ensure_chromium.sh [PATH]   (default /usr/bin/chromium, where Debian puts it)
set -euo pipefail

chromium="${1:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
    exit 0
fi
if [ "$chromium" != /usr/bin/chromium ]; then
    echo "ensure_chromium: $chromium does not exist or is not executable." >&2
    exit 1
fi

manual="Install it yourself (Debian: apt-get install chromium; elsewhere Chrome or Chromium)
and run again with CHROMIUM=/path/to/chromium if it is not at /usr/bin/chromium."
if ! command -v apt-get >/dev/null; then
    echo "ensure_chromium: no /usr/bin/chromium and no apt-get to install it. $manual" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)  # -n: fail at once rather than wait for a password nobody types (CI)
else
    echo "ensure_chromium: installing chromium needs root, and sudo is missing or asks for a" \
         "password. $manual" >&2
    exit 1
fi

echo "ensure_chromium: installing Debian's chromium (once; about 1-2 minutes)..."
# Without the recommended extras (printing, avahi, udev...): a headless test needs none of them,
# only the Liberation fonts, which make the screenshots' text look like a desktop's.
"${sudo[@]}" apt-get update -q
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends chromium fonts-liberation; then
    echo "ensure_chromium: apt-get could not install chromium. $manual" >&2
    exit 1
fi
# Ubuntu's `chromium` is only a wrapper around a snap, which does not run in containers.
if ! "$chromium" --version >/dev/null 2>&1; then
    echo "ensure_chromium: $chromium was installed but does not run ($chromium --version" \
         "failed; on Ubuntu it is a snap wrapper). $manual" >&2
    exit 1
fi
"$chromium" --version 2>/dev/null
