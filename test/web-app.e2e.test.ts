/**
 * The web app in a real browser (issue 17): Debian's Chromium driven by
 * playwright-core, against the whole stack on free ports, the app served by
 * the gateway at /app/. Every page is checked with axe-core (no serious or
 * critical violations) and photographed into .data/screenshots/.
 */
import AxeBuilder from '@axe-core/playwright';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ensureWebAppBuilt } from '../scripts/web-app-build';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

// The functions passed to page.evaluate run in Chromium, but this file is type-checked for Node (no DOM
// library, which would change the types of every other file): the few browser globals they use are declared here.
interface PageElement {
  textContent: string | null;
  querySelector(selector: string): PageElement | null;
}
declare const document: { querySelector<T = PageElement>(selector: string): T | null; activeElement: unknown; documentElement: { scrollWidth: number } };
declare const window: { innerWidth: number };
declare const localStorage: { getItem(key: string): string | null; setItem(key: string, value: string): void };
declare const navigator: { clipboard: { readText(): Promise<string> } };
declare function requestAnimationFrame(callback: () => void): number;
declare class DataTransfer {
  items: { add(file: File): void };
}
declare class DragEvent extends Event {
  constructor(type: string, init: { dataTransfer: DataTransfer; bubbles: boolean; cancelable: boolean });
}

// A page waits on the whole stack (a generation, an ingestion); on a loaded machine one test can take half a minute.
jest.setTimeout(120_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOTS = path.resolve(__dirname, '..', '.data', 'screenshots');
const PASSWORD = 'correct horse battery';
/** Small, so one long answer is more than a new account can hold: the refusal is part of the test. */
const FREE_CREDIT_MICROS = 300;
const ADMIN_EMAIL = uniqueEmail('web-admin');

let stack: TestStack;
let browser: Browser;
let app: string;
let adminToken: string;

beforeAll(async () => {
  await ensureWebAppBuilt(() => undefined);
  stack = await startTestStack({ AUTH_ADMIN_EMAILS: ADMIN_EMAIL, BILLING_FREE_CREDIT_MICROS: String(FREE_CREDIT_MICROS) });
  app = `${new URL(stack.gatewayUrl).origin}/app/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const admin = await gql(stack.gatewayUrl, 'mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: "Ada Admin") { token } }', { e: ADMIN_EMAIL, p: PASSWORD });
  adminToken = admin.data!.signUp.token;
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
}, 60_000);

const contexts: BrowserContext[] = [];
afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close();
});

async function newPage(viewport = { width: 1280, height: 860 }): Promise<Page> {
  const context = await browser.newContext({ viewport, baseURL: app });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(app).origin });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  return page;
}

/** Fails on any serious or critical accessibility violation, naming each rule and the elements that break it. */
async function expectAccessible(page: Page, name: string): Promise<void> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`);
  expect({ page: name, serious }).toEqual({ page: name, serious: [] });
}

async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Signs up through the form and waits for the chat; returns the e-mail and the session token the app stored. */
async function signUp(page: Page, email = uniqueEmail('web')): Promise<{ email: string; token: string; userId: string }> {
  await page.goto('sign-up');
  const form = page.getByRole('form', { name: 'Sign up' });
  await form.getByLabel('Name').fill('Grace Web');
  await form.getByLabel('E-mail').fill(email);
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL('**/app/chat');
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('sluice.session') ?? 'null') as { token: string; user: { id: string } });
  return { email, token: session.token, userId: session.user.id };
}

async function availableMicros(token: string): Promise<number> {
  const res = await gql(stack.gatewayUrl, '{ me { balance { available reserved } } }', {}, bearer(token));
  return res.data!.me.balance.available as number;
}

async function topUp(userId: string, micros: number): Promise<void> {
  const res = await gql(
    stack.gatewayUrl,
    'mutation($u: ID!, $a: Micros!, $k: String!) { topUp(userId: $u, amountMicros: $a, idempotencyKey: $k) { total } }',
    { u: userId, a: micros, k: `web-${userId}` },
    bearer(adminToken),
  );
  expect(res.errors).toBeUndefined();
}

/** Reads `read()` until it returns `expected` (then returns it) or `timeoutMs` pass (then returns the last value, for the assertion to show). */
async function settled<T>(read: () => Promise<T>, expected: T, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (value !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** Types a message and sends it with Enter, as a person would. */
async function send(page: Page, text: string): Promise<void> {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

describe('web app', () => {
  it('signs up, keeps the session over a reload, moves back between pages, signs out and in again', async () => {
    const page = await newPage();
    await page.goto('');
    await page.waitForURL('**/app/sign-in');
    await expectAccessible(page, 'sign in');
    await page.getByRole('link', { name: 'Sign up' }).click();
    await expect(page.getByRole('heading', { name: 'Sign up' }).isVisible()).resolves.toBe(true);
    await expectAccessible(page, 'sign up');
    await screenshot(page, 'sign-up');

    const { email } = await signUp(page);
    await page.reload();
    await page
      .getByRole('heading', { name: 'New conversation' })
      .or(page.getByRole('heading', { name: 'Chat' }))
      .waitFor();
    expect(page.url()).toMatch(/\/app\/chat$/);

    const nav = page.getByRole('navigation', { name: 'Pages' });
    await nav.getByRole('link', { name: 'Knowledge' }).click();
    await page.getByRole('heading', { name: 'Knowledge', level: 1 }).waitFor();
    await nav.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await page.goBack();
    await page.getByRole('heading', { name: 'Knowledge', level: 1 }).waitFor();
    expect(page.url()).toMatch(/\/app\/knowledge$/);
    expect(await nav.getByRole('link', { name: 'Admin' }).count()).toBe(0);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/app/sign-in');
    expect(await page.evaluate(() => localStorage.getItem('sluice.session'))).toBeNull();
    const form = page.getByRole('form', { name: 'Sign in' });
    await form.getByLabel('E-mail').fill(email);
    await form.getByLabel('Password').fill('not the password');
    await form.getByRole('button', { name: 'Sign in' }).click();
    await expect(form.getByRole('alert').textContent()).resolves.toMatch(/^[A-Z].*\.$/);
    await form.getByLabel('Password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/app/chat');
  });

  it('drops the session when the graph refuses its token', async () => {
    const page = await newPage();
    await signUp(page);
    await page.evaluate(() => {
      // The signature's first character: its last ones may encode nothing (base64url padding bits).
      const session = JSON.parse(localStorage.getItem('sluice.session')!) as { token: string };
      const [header, payload, signature] = session.token.split('.');
      const tampered = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
      localStorage.setItem('sluice.session', JSON.stringify({ ...session, token: `${header}.${payload}.${tampered}` }));
    });
    await page.goto('account');
    await page.waitForURL('**/app/sign-in');
  });

  it('streams an answer over several frames, shows its cost, which is what leaves the balance; stops a long answer mid-stream', async () => {
    const page = await newPage();
    const { token, userId } = await signUp(page);
    await topUp(userId, 1_000_000);
    await page.getByLabel('Model').selectOption('sluice-chat');
    await expect(page.locator('.prices').textContent()).resolves.toContain('Input $0.28 / 1M tokens ($0.028 / 1M tokens when cached) · Output $0.42 / 1M tokens');

    // A short answer, whole: its cost, shown under it, is what the balance loses once billing has settled it.
    const before = await availableMicros(token);
    await page.getByLabel('Longest answer (tokens)').fill('24');
    await send(page, 'Name a **river**.');
    const cost = page.locator('.message.assistant .cost strong').first();
    await cost.waitFor();
    const costMicros = Number(await cost.getAttribute('data-micros'));
    expect(costMicros).toBeGreaterThan(0);
    const shown = (await cost.textContent())!;
    expect(await settled(() => availableMicros(token), before - costMicros)).toBe(before - costMicros);
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Account' }).click();
    const available = page.getByTestId('available');
    await available.waitFor();
    expect(Number(await available.getAttribute('data-micros'))).toBe(before - costMicros);
    expect(shown).toMatch(/^\$0\.\d+$/);
    await page.locator('.chart canvas').first().waitFor();
    await screenshot(page, 'account-usage');
    await page.goBack();

    // A long answer: its text grows over several frames, then Stop ends it where it is. The page itself
    // watches each frame and presses Stop after the third growth, so the stop lands mid-stream however
    // fast the model writes; an answer the (random, tiny) model ends on its own first is asked again.
    await page.getByLabel('Longest answer (tokens)').fill('900');
    let watched: { lengths: number[]; stopped: boolean } = { lengths: [], stopped: false };
    for (let attempt = 1; attempt <= 4 && !watched.stopped; attempt++) {
      await send(page, `Tell me a long story about rivers, please (${attempt}).`);
      watched = await page.evaluate(
        () =>
          new Promise<{ lengths: number[]; stopped: boolean }>((resolve) => {
            const lengths: number[] = [];
            let seenLive = false;
            const frame = () => {
              const live = document.querySelector('.message.assistant[aria-busy="true"]');
              if (!live && seenLive) return resolve({ lengths, stopped: false });
              seenLive ||= live !== null;
              const length = live?.querySelector('.markdown')?.textContent?.length ?? 0;
              if (length > 0 && lengths.at(-1) !== length) lengths.push(length);
              if (lengths.length < 3) return void requestAnimationFrame(frame);
              document.querySelector<{ click(): void }>('.composer button.danger')!.click();
              resolve({ lengths, stopped: true });
            };
            requestAnimationFrame(frame);
          }),
      );
      await page.getByRole('button', { name: 'Send' }).waitFor();
    }
    expect(watched.stopped).toBe(true);
    expect([...watched.lengths].sort((a, b) => a - b)).toEqual(watched.lengths);
    const stopped = page.locator('.message.assistant').last();
    await expect(stopped.textContent()).resolves.toContain('Stopped: billed for the text received only.');
    expect(((await stopped.locator('.markdown').textContent()) ?? '').length).toBeGreaterThanOrEqual(watched.lengths.at(-1)!);
    await expect(page.getByRole('button', { name: 'Send' }).isVisible()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Retry' }).waitFor();

    // The conversation is kept in the browser.
    const asked = await page.locator('.message.user').count();
    await page.reload();
    await page
      .locator('.message.assistant')
      .nth(asked - 1)
      .waitFor();
    await expect(page.locator('.message.user').count()).resolves.toBe(asked);
    await expectAccessible(page, 'chat');
    const shot = await screenshot(page, 'chat');
    // The README's picture is refreshed on request only, so a test run leaves the work tree as it found it.
    if (process.env.SLUICE_UPDATE_README_IMAGES === '1') {
      const images = path.resolve(__dirname, '..', 'docs', 'images');
      mkdirSync(images, { recursive: true });
      copyFileSync(shot, path.join(images, 'chat.png'));
    }
  });

  it('says, with the amounts, that a balance is too low for the answer asked', async () => {
    const page = await newPage();
    await signUp(page);
    await page.getByLabel('Model').selectOption('sluice-chat');
    await page.getByLabel('Longest answer (tokens)').fill('1000');
    await send(page, 'Write at length.');
    const error = page.locator('.message.assistant .notice-error');
    await expect(error.textContent()).resolves.toMatch(/^Your balance is too low: this request may cost up to \$0\.000\d+, and \$0\.0003 is available\. Top up, or ask for a shorter answer\.$/);
  });

  it('uploads documents (file input and drop), shows ingestion reach 100 %, searches with highlights, asks and follows a citation', async () => {
    const page = await newPage();
    const { userId } = await signUp(page);
    await topUp(userId, 1_000_000);
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Knowledge' }).click();
    await page.getByLabel('Tags for new documents').fill('geography, rivers');
    const rivers = [
      '# Rivers',
      '',
      '## The Nile',
      'The Nile flows north through Egypt into the Mediterranean Sea. It is about 6,650 km long.',
      '',
      '## The Amazon',
      'The Amazon carries more water than any other river and ends in the Atlantic Ocean.',
      '',
      ...Array.from({ length: 30 }, (_, i) => `## Tributary ${i + 1}\nTributary ${i + 1} of the Amazon drains a basin of forest, wetlands and highlands, number ${i + 1}.\n`),
    ].join('\n');
    await page.getByLabel('Files to add').setInputFiles({ name: 'rivers.md', mimeType: 'text/markdown', buffer: Buffer.from(rivers) });

    const bar = page.getByRole('progressbar', { name: 'Ingestion of rivers' });
    await bar.waitFor();
    expect(await settled(async () => Number(await bar.getAttribute('value')), 100, 60_000)).toBe(100);
    await expect(page.locator('.documents li').filter({ hasText: 'rivers' }).locator('.tags').textContent()).resolves.toBe('geographyrivers');

    // The drop zone takes files too.
    await page.locator('.drop-zone').evaluate((zone) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['# Lakes\n\nLake Baikal is the deepest lake on Earth.'], 'lakes.md', { type: 'text/markdown' }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    const lakes = page.getByRole('progressbar', { name: 'Ingestion of lakes' });
    expect(await settled(async () => Number(await lakes.getAttribute('value')), 100, 60_000)).toBe(100);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete lakes' }).click();
    await lakes.waitFor({ state: 'detached' });

    await page.getByLabel('Search your documents').fill('Where does the Nile flow?');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('.hits mark').first().waitFor();
    expect((await page.locator('.hits mark').allTextContents()).map((t) => t.toLowerCase())).toContain('nile');
    await expectAccessible(page, 'knowledge');
    await screenshot(page, 'knowledge');

    await page.getByLabel('Question about your documents').fill('Which sea does the Nile flow into?');
    await page.getByRole('button', { name: 'Ask' }).click();
    const citation = page.locator('.citations a').first();
    await citation.waitFor();
    await page.getByRole('button', { name: 'Ask' }).waitFor({ timeout: 60_000 });
    const href = (await citation.getAttribute('href'))!;
    expect(href).toMatch(/^\/app\/knowledge\/documents\/[^/#]+#chunk-\d+$/);
    await citation.click();
    await page.waitForURL(`**${href}`);
    const chunk = page.locator(href.slice(href.indexOf('#')));
    await chunk.waitFor();
    await expect(chunk.evaluate((element) => document.activeElement === element)).resolves.toBe(true);
    await expectAccessible(page, 'document');
    await screenshot(page, 'document');
    await page.goBack();
    await page.getByRole('heading', { name: 'Knowledge', level: 1 }).waitFor();
  });

  it('creates an API key with scopes, shows its secret once with a copy button, and the key works from plain HTTP until revoked', async () => {
    const page = await newPage();
    await signUp(page);
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Balance' }).waitFor();
    await page.getByTestId('available').waitFor();
    await expect(page.getByTestId('available').textContent()).resolves.toBe('$0.0003');

    const form = page.getByRole('form', { name: 'Create an API key' });
    await form.getByLabel('Key name').fill('script');
    await form.getByLabel(/billing:read/).check();
    await form.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.getByTestId('api-key-secret').textContent())!;
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);

    const viaKey = await gql(stack.gatewayUrl, '{ me { email balance { available } } }', {}, bearer(secret));
    expect(viaKey.errors).toBeUndefined();
    expect(viaKey.data!.me.balance.available).toBe(FREE_CREDIT_MICROS);
    const refused = await gql(stack.gatewayUrl, 'mutation { addDocument(title: "t", content: "c") { id } }', {}, bearer(secret));
    expect(refused.errors?.[0].extensions?.code).toBe('FORBIDDEN');

    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.getByTestId('api-key-secret').count()).toBe(0);
    const limits = page.getByRole('form', { name: 'Spend limits of script' });
    await limits.getByLabel(/Daily cap/).fill('0.50');
    await limits.getByRole('button', { name: 'Save caps' }).click();
    await limits.getByText('Saved.').waitFor();
    await limits.getByLabel(/Monthly cap/).fill('ten');
    await limits.getByRole('button', { name: 'Save caps' }).click();
    await expect(limits.getByRole('alert').textContent()).resolves.toBe('“ten” is not an amount: expected a number such as 5 or 2.50.');
    await expectAccessible(page, 'account');
    await screenshot(page, 'account');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Revoke script' }).click();
    await page.locator('.api-keys .revoked').waitFor();
    // The gateway may keep a verified key for a few seconds (its credential cache).
    expect(await settled(async () => (await gql(stack.gatewayUrl, '{ me { id } }', {}, bearer(secret))).status, 401)).toBe(401);
  });

  it('shows admins the models with their GPU endpoints, refreshed live', async () => {
    const page = await newPage();
    await page.goto('sign-in');
    const form = page.getByRole('form', { name: 'Sign in' });
    await form.getByLabel('E-mail').fill(ADMIN_EMAIL);
    await form.getByLabel('Password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Admin' }).click();
    const endpoints = page.getByRole('table', { name: 'GPU endpoints of sluice-chat' });
    await endpoints.getByRole('cell', { name: 'closed' }).first().waitFor();
    await expect(endpoints.locator('tbody th code').first().textContent()).resolves.toMatch(new RegExp(`:${stack.ports.gpuGrpc}$`));
    // Live: the page asks again on its own.
    for (let i = 0; i < 2; i++) await page.waitForRequest((request) => request.url().endsWith('/graphql') && (request.postData() ?? '').includes('AdminModels'), { timeout: 10_000 });
    await expectAccessible(page, 'admin');
    await screenshot(page, 'admin');
  });

  it('works at phone width without sideways scrolling', async () => {
    const page = await newPage({ width: 375, height: 740 });
    await signUp(page);
    for (const [link, heading] of [
      ['Chat', null],
      ['Knowledge', 'Knowledge'],
      ['Account', 'Account'],
    ] as const) {
      await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: link }).click();
      if (heading) await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      expect({ link, overflow: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth) }).toEqual({ link, overflow: false });
    }
    await screenshot(page, 'account-phone');
  });

  // Last: it kills and restarts the inference service under the stack the other tests share.
  it('goes on with an answer whose inference service is lost mid-stream where it stopped: one answer, no error', async () => {
    const page = await newPage();
    const { userId } = await signUp(page);
    await topUp(userId, 1_000_000);
    await page.getByLabel('Model').selectOption('sluice-chat');
    await page.getByLabel('Longest answer (tokens)').fill('900');
    // Mid-answer at the kill: some text shown, still being written (an answer the tiny model ends at once is asked again).
    let midAnswer = false;
    for (let attempt = 1; attempt <= 4 && !midAnswer; attempt++) {
      await send(page, `Tell me a long story about a river that never ends (${attempt}).`);
      midAnswer = await page.evaluate(
        () =>
          new Promise<boolean>((resolve) => {
            const frame = () => {
              const live = document.querySelector('.message.assistant[aria-busy="true"]');
              if (!live) return resolve(false);
              if ((live.querySelector('.markdown')?.textContent?.length ?? 0) > 20) return resolve(true);
              requestAnimationFrame(frame);
            };
            requestAnimationFrame(frame);
          }),
      );
      if (midAnswer) await stack.kill('inference', 'SIGKILL');
      else await page.getByRole('button', { name: 'Send' }).waitFor();
    }
    expect(midAnswer).toBe(true);
    // The page says it is reconnecting while the service is down, then the same answer goes on.
    await page.getByRole('status').filter({ hasText: 'reconnecting, the answer goes on where it stopped' }).waitFor();
    await stack.restart('inference');
    await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
    const answer = page.locator('.message.assistant').last();
    expect(await answer.locator('.notice-error').count()).toBe(0);
    expect(Number(await answer.locator('.cost strong').getAttribute('data-micros'))).toBeGreaterThan(0);
    // One stream, run more than once: resumed under its key, not asked again.
    const redis = new Redis(stack.redisUrl);
    try {
      const records = await redis.keys(`inference:stream:${userId}:*`);
      const runs = await Promise.all(records.map(async (key) => Number(await redis.hget(key, 'runs'))));
      expect(runs.filter((n) => n >= 2)).toHaveLength(1);
    } finally {
      redis.disconnect();
    }
  });
});
