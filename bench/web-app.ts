/**
 * The web app's weight and first load (issue 17): the production bundle's
 * JavaScript gzipped (all of it, and what the first page loads), and the time
 * from navigation to first contentful paint, largest contentful paint and the
 * sign-in form on screen, in Chromium against a local gateway, with a cold
 * cache (a new browser context per load) and a warm one (the hashed assets
 * cached as immutable). Targets: < 300 KB gzipped JS, FCP < 1 s.
 *
 *   npx tsx bench/web-app.ts
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, type Page } from 'playwright-core';
import { WEB_APP_BUILD } from '../gateway/web-app/web-app-handler';
import { ensureWebAppBuilt } from '../scripts/web-app-build';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';

const LOADS = 15;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// page.evaluate's function runs in Chromium; this file is type-checked for Node, so the browser globals it uses are declared.
declare const performance: { getEntriesByType(type: string): { name: string; startTime: number }[] };
declare class PerformanceObserver {
  constructor(callback: (list: { getEntries(): { startTime: number }[] }) => void);
  observe(options: { type: string; buffered: boolean }): void;
}

interface Load {
  fcp: number;
  lcp: number;
  form: number;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const ms = (values: number[], p: number) => `${percentile(values, p).toFixed(0)} ms`;

/** Every JS file of the build, gzipped as the gateway serves it, and the ones index.html loads (its entry and modulepreloads). */
function bundleSizes(): { all: number; initial: number; files: number } {
  const assets = path.join(WEB_APP_BUILD, 'assets');
  const index = readFileSync(path.join(WEB_APP_BUILD, 'index.html'), 'utf8');
  let all = 0;
  let initial = 0;
  const scripts = readdirSync(assets).filter((f) => f.endsWith('.js'));
  for (const file of scripts) {
    const size = gzipSync(readFileSync(path.join(assets, file))).length;
    all += size;
    if (index.includes(`/assets/${file}`)) initial += size;
  }
  return { all, initial, files: scripts.length };
}

/** Navigates and reads the paint timings the page recorded, and when the sign-in form was on screen. */
async function measure(page: Page, url: string): Promise<Load> {
  await page.goto(url);
  await page.getByRole('form', { name: 'Sign in' }).waitFor();
  return page.evaluate(
    () =>
      new Promise<Load>((resolve) => {
        const fcp = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint')?.startTime ?? NaN;
        const form = performance.getEntriesByType('mark').find((e) => e.name === 'sluice:app-rendered')?.startTime ?? NaN;
        new PerformanceObserver((list) => resolve({ fcp, lcp: list.getEntries().at(-1)?.startTime ?? NaN, form })).observe({ type: 'largest-contentful-paint', buffered: true });
      }),
  );
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  await ensureWebAppBuilt((line) => console.log(line));
  const sizes = bundleSizes();
  const { stack } = await benchStack();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const url = `${new URL(stack.gatewayUrl).origin}/app/sign-in`;
    const cold: Load[] = [];
    const warm: Load[] = [];
    // One load first, not counted: the gateway's file cache and gzip are filled on first request.
    for (let i = 0; i <= LOADS; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const first = await measure(page, url);
      const second = await measure(page, url);
      if (i > 0) {
        cold.push(first);
        warm.push(second);
      }
      await context.close();
    }
    const row = (label: string, loads: Load[]) => {
      const fcp = loads.map((l) => l.fcp);
      const lcp = loads.map((l) => l.lcp);
      const form = loads.map((l) => l.form);
      return `| ${label} | ${ms(fcp, 50)} | ${ms(fcp, 90)} | ${ms(lcp, 50)} | ${ms(form, 50)} | ${ms(form, 90)} |`;
    };
    const body = [
      `The production build (\`npm run build:web\`, Vite) served by the gateway at /app/ from the whole stack on this machine (\`benchStack\`), loaded ${LOADS} times in Debian's Chromium (headless, playwright-core) after one uncounted load (\`npx tsx bench/web-app.ts\`).`,
      '',
      `**Bundle:** ${kb(sizes.all)} of JavaScript gzipped in ${sizes.files} ${sizes.files === 1 ? 'file' : 'files'} (target < 300 KB), of which the first page loads ${kb(sizes.initial)}.`,
      '',
      '| load | FCP p50 | FCP p90 | LCP p50 | app rendered p50 | app rendered p90 |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      row('cold (new browser context)', cold),
      row('warm (assets cached as immutable)', warm),
      '',
      'Times are from navigation start. FCP is the first contentful paint (the "Loading Sluice…" line that index.html carries, before any script); LCP the largest contentful paint; "app rendered" the moment React first rendered the sign-in form (a performance mark the app sets), the first paint that means anything. Chrome no longer reports "first meaningful paint"; LCP and the app mark stand for it. Target: FCP < 1 s.',
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('web-app', 'Issue 17: web app bundle size and first load', body);
  } finally {
    await browser.close();
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
