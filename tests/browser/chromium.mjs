// What the browser scripts share: Debian's Chromium launched headless the same way, and the
// two viewports screenshots are taken at.
import { chromium } from 'playwright-core';

const LAUNCH_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true };

/** Chromium at `executablePath`, headless, with its own log silenced. */
export function launch(executablePath) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: LAUNCH_FLAGS,
    env: { ...process.env, CHROME_LOG_FILE: '/dev/null' },
  });
}
