import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';

/**
 * Real-browser tests drive the system's Chromium (Debian's `chromium` package; CHROMIUM_PATH
 * names another): Playwright's own browser download cannot be fetched on these machines.
 */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Whether the browser tests can run here. Without a Chromium they are skipped, saying why — except
 * in CI (.ci/run installs it), where a missing browser must fail the run rather than hide it.
 */
export function browserMissing(): boolean {
  if (existsSync(chromiumPath)) return false;
  if (process.env.CI)
    throw new Error(`No Chromium at ${chromiumPath}: apt-get install -y chromium`);
  console.info(
    `browser tests skipped: no Chromium at ${chromiumPath} (apt-get install -y chromium)`,
  );
  return true;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true });
}

/** Where a run's screenshots go (git-ignored): test-results/screenshots. */
export const screenshotDir = fileURLToPath(
  new URL('../../test-results/screenshots', import.meta.url),
);

/** The widths every page is looked at: a phone's and a desktop's. */
export const viewports = {
  phone: { width: 390, height: 844 },
  desktop: { width: 1280, height: 800 },
} as const;

/** Options of every browser context: a desktop's width, and no animations to wait for. */
export const contextOptions = { viewport: viewports.desktop, reducedMotion: 'reduce' } as const;

/** Saves the page at both widths as <name>-phone.png and <name>-desktop.png. */
export async function screenshotBothWidths(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  const before = page.viewportSize();
  for (const [width, size] of Object.entries(viewports)) {
    await page.setViewportSize(size);
    // Transitions the new width starts (the navigation folding away) are taken at their end.
    await page.screenshot({
      path: join(screenshotDir, `${name}-${width}.png`),
      fullPage: true,
      animations: 'disabled',
    });
  }
  if (before) await page.setViewportSize(before);
}
