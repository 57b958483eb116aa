"""Tests that drive a page in headless Chromium (Debian's chromium package, through Playwright)."""
