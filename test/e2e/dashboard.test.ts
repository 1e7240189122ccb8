/**
 * The dashboard in a real browser: headless Chromium (Debian's package, driven by playwright-core)
 * against the API server on a real Temporal server with real workers. It signs in with a token,
 * finds an SFT run in the runs list, checks that the run page's plots hold exactly the steps of
 * the metrics ledger, pauses the run with the button and sees it paused, resumes and cancels it;
 * an online run's rollout viewer shows each iteration's prompts, responses and rewards; a
 * pipeline's stage tree links its stages' runs; a read token's Pause is refused on the page.
 * Screenshots go to test-artifacts/dashboard/. Skipped, saying why, where Chromium is missing
 * (`bash infra/setup.sh --browser` installs it).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import YAML from 'yaml';
import { getPipeline } from '../../algorithms/pipelines/index.js';
import { buildApi } from '../../infra/api/server.js';
import { RunService } from '../../infra/runs.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { crashFixture, root, slowIt, uniqueId, until, withAbsolutePaths } from './helpers.js';

const CHROMIUM = process.env.ALIGN_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[dashboard] skipping the browser tests: no Chromium at ${CHROMIUM} (install it with: bash infra/setup.sh --browser, or set ALIGN_CHROMIUM)`);
const browserIt = haveChromium ? slowIt : slowIt.skip;

const SHOTS = path.join(root, 'test-artifacts/dashboard');
const TOKEN = 'dashboard-operate-token-0123';
const READ_TOKEN = 'dashboard-read-token-4567';

const fixture = crashFixture('dashboard');
let service: RunService;
let app: FastifyInstance;
let base: string;
let browser: Browser;

beforeAll(async () => {
  service = new RunService({ address: defaultTemporalAddress(), storeUri: fixture.storeUri, queues: fixture.REF });
  app = buildApi({ service, token: TOKEN, tokens: [{ token: READ_TOKEN, scope: 'read' }] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  if (haveChromium) {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  }
  mkdirSync(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await service?.close();
});

/** An example config (a recipe's YAML file, or a pipeline's name) with its relative paths made absolute. */
const example = (file: string) => withAbsolutePaths(file.endsWith('.yaml') ? YAML.parse(readFileSync(path.join(root, file), 'utf8')) : getPipeline(file).example);

async function api<T = Record<string, unknown>>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const res = await fetch(base + url, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json as T;
}

/** A signed-in page (the token typed into the form, as a person would). */
async function signedIn(token = TOKEN): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => console.error(`[dashboard] page error: ${e.message}`));
  await page.goto(`${base}/`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  return page;
}

/** Waits until the page has rendered again after `after` (its refresh marker changed). */
async function rendered(page: Page, after = 0): Promise<void> {
  await page.waitForFunction((t) => Number(document.body.dataset.loaded ?? 0) > t, after, { timeout: 30_000 });
}

const loadedAt = (page: Page) => page.evaluate(() => Number(document.body.dataset.loaded ?? 0));

/** What a chart drew: its point count and its first series' values (from the uPlot instance). */
const chartData = (page: Page, title: string) => page.$eval(`.chart[data-title="${title}"]`, (box) => {
  const chart = (box as HTMLElement & { chart?: { data: (number | null)[][] } }).chart;
  return { points: Number((box as HTMLElement).dataset.points), xs: chart?.data[0] ?? [], ys: chart?.data[1] ?? [] };
});

describe('the dashboard in headless Chromium', () => {
  browserIt('runs list, the run page\'s plots against the metrics ledger, Pause / Resume / Cancel, checkpoints; the token never in the page', async () => {
    const runId = uniqueId('dash-sft');
    const config = { ...example('examples/sft.yaml'), trainer: { ...(example('examples/sft.yaml').trainer as object), maxSteps: 2000, checkpointEvery: 5, valEvery: 10 }, cost: { perDeviceHour: 2.5, currency: 'EUR' } };
    await api('POST', '/runs', { recipe: 'sft', config, runId });
    await until('a committed chunk', () => api<{ steps: unknown[] }>('GET', `/runs/${runId}/metrics`), (m) => m.steps.length >= 5);

    const page = await signedIn();
    await page.waitForSelector(`#runs tr[data-run="${runId}"]`);
    expect(await page.textContent(`#runs tr[data-run="${runId}"]`)).toMatch(/sft.*RUNNING · training/);
    await page.screenshot({ path: path.join(SHOTS, 'runs.png'), fullPage: true });

    await page.goto(`${base}/#/runs/${runId}`);
    await page.waitForSelector('.chart[data-title="training loss"] canvas');
    for (const title of ['training loss', 'learning rate', 'grad norm']) expect((await chartData(page, title)).points, title).toBeGreaterThanOrEqual(5);

    await page.click('button[data-action=pause]');
    await page.waitForFunction(() => document.querySelector('[data-role=status]')?.textContent?.includes('paused'), undefined, { timeout: 60_000 });
    // Paused between chunks, so the ledger holds still: the plots must have exactly its points.
    await rendered(page, await loadedAt(page));
    const ledger = await api<{ steps: { step: number; loss: number; lr: number }[]; validations: { step: number; loss: number }[] }>('GET', `/runs/${runId}/metrics`);
    const loss = await chartData(page, 'training loss');
    expect(loss.points).toBe(ledger.steps.length);
    expect(loss.xs).toEqual(ledger.steps.map((s) => s.step));
    expect(loss.ys).toEqual(ledger.steps.map((s) => s.loss));
    expect((await chartData(page, 'learning rate')).ys).toEqual(ledger.steps.map((s) => s.lr));
    if (ledger.validations.length) expect((await chartData(page, 'validation loss')).ys).toEqual(ledger.validations.map((v) => v.loss));
    expect(await page.isDisabled('button[data-action=pause]')).toBe(true);
    const { progress } = await api<{ progress: { cost: { amount: number; currency: string } } }>('GET', `/runs/${runId}`);
    const shownCost = (await page.textContent('[data-role=cost] .value'))!;
    expect(shownCost).toMatch(/^[\d.e-]+ EUR$/);
    expect(progress.cost.amount).toBeGreaterThan(0);
    expect(Math.abs(Number(shownCost.split(' ')[0]) / progress.cost.amount - 1)).toBeLessThan(0.006); // 3 significant digits
    const checkpoints = await api<{ checkpoints: { step: number }[] }>('GET', `/runs/${runId}/checkpoints`);
    expect(await page.$$eval('#checkpoints > tbody > tr', (rows) => rows.map((r) => Number(r.getAttribute('data-step'))))).toEqual(checkpoints.checkpoints.map((c) => c.step));
    await page.screenshot({ path: path.join(SHOTS, 'run-paused.png'), fullPage: true });

    // The token was typed into a form that was then cleared: it is in no URL and nowhere in the page.
    expect(page.url()).not.toContain(TOKEN);
    expect(await page.content()).not.toContain(TOKEN);

    await page.click('button[data-action=resume]');
    await page.waitForFunction(() => /training/.test(document.querySelector('[data-role=status]')?.textContent ?? ''), undefined, { timeout: 60_000 });
    await page.click('button[data-action=cancel]');
    await page.waitForFunction(() => document.querySelector('[data-role=state]')?.textContent === 'STOPPED', undefined, { timeout: 120_000 });
    await page.screenshot({ path: path.join(SHOTS, 'run-stopped.png'), fullPage: true });
    await page.close();
  }, 300_000);

  browserIt('a run whose activities wait for a compute worker says so on its page within seconds', async () => {
    // The fixture's CRASH queues have a control worker and no compute worker.
    const svc = new RunService({ address: defaultTemporalAddress(), storeUri: fixture.storeUri, queues: fixture.CRASH });
    const app2 = buildApi({ service: svc, token: TOKEN });
    const runId = uniqueId('dash-no-worker');
    try {
      const url = await app2.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetch(`${url}/runs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ recipe: 'sft', config: example('examples/sft.yaml'), runId }) });
      expect(res.status).toBe(201);
      const page = await browser.newPage();
      await page.goto(`${url}/`);
      await page.fill('input[name=token]', TOKEN);
      await page.click('button[type=submit]');
      await page.goto(`${url}/#/runs/${runId}`);
      // The page refreshes every 5 s while the run runs; the message comes with the first status that has it.
      await page.waitForFunction(() => document.querySelector('[data-role=waiting]')?.textContent?.includes('none is polling'), undefined, { timeout: 30_000 });
      expect(await page.textContent('[data-role=waiting]')).toBe(`waiting for a compute worker on ${fixture.CRASH.compute}: none is polling; start one with npx tsx infra/workers/main.ts (ALIGN_QUEUES names the queues)`);
      await page.screenshot({ path: path.join(SHOTS, 'run-no-worker.png'), fullPage: true });
      await page.close();
    } finally {
      await svc.terminate(runId, 'test over').catch(() => undefined);
      await app2.close();
      await svc.close();
    }
  });

  browserIt('a read token sees the run but its Pause is refused on the page, naming the scope', async () => {
    const runId = uniqueId('dash-read');
    await api('POST', '/runs', { recipe: 'sft', config: { ...example('examples/sft.yaml'), trainer: { ...(example('examples/sft.yaml').trainer as object), maxSteps: 2000 } }, runId });
    try {
      const page = await signedIn(READ_TOKEN);
      await page.goto(`${base}/#/runs/${runId}`);
      await page.waitForSelector('button[data-action=pause]:not([disabled])');
      await page.click('button[data-action=pause]');
      await page.waitForFunction(() => document.querySelector('[data-role=action-result]')?.textContent?.includes('scope operate'), undefined, { timeout: 30_000 });
      expect((await api<{ progress: { status: string } }>('GET', `/runs/${runId}`)).progress.status).not.toBe('paused');
      await page.close();
    } finally {
      await api('POST', `/runs/${runId}/terminate`, { reason: 'test over' });
    }
  });

  browserIt('an online run: reward, KL and per-phase time plotted by iteration; the rollout viewer shows each iteration\'s samples and rewards', async () => {
    const runId = uniqueId('dash-grpo');
    const config = { ...example('examples/grpo.yaml'), trainer: { ...(example('examples/grpo.yaml').trainer as object), maxSteps: 3 } };
    await api('POST', '/runs', { recipe: 'grpo', config, runId });
    const t0 = Date.now();
    await until('the run to end', () => api<{ state: string }>('GET', `/runs/${runId}`), (v) => v.state !== 'RUNNING', 240_000);
    console.log(`[dashboard] grpo run of 3 iterations: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const page = await signedIn();
    await page.goto(`${base}/#/runs/${runId}`);
    await page.waitForSelector('#rollouts table');
    const titles = await page.$$eval('.chart', (boxes) => boxes.map((b) => (b as HTMLElement).dataset.title));
    expect(titles).toEqual(expect.arrayContaining(['training loss', 'reward', 'time per phase (s)']));
    const ledger = await api<{ steps: { metrics: Record<string, number> }[] }>('GET', `/runs/${runId}/metrics`);
    expect((await chartData(page, 'reward')).ys).toEqual(ledger.steps.map((s) => s.metrics.reward));

    const first = await api<{ iterations: number[]; samples: { prompt: string; response: string; reward: number }[] }>('GET', `/runs/${runId}/rollouts?iteration=0`);
    await page.selectOption('#rollouts select', '0');
    await page.waitForFunction(({ n, prompt }) => document.querySelectorAll('#rollouts tbody tr').length === n && document.querySelector('#rollouts tbody td:nth-child(2)')?.textContent === prompt, { n: first.samples.length, prompt: first.samples[0].prompt });
    const rows = await page.$$eval('#rollouts tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows[0][1]).toBe(first.samples[0].prompt);
    expect(rows[0][2]!.replace(/ …$/, '')).toBe(first.samples[0].response);
    expect(Number(rows[0][3])).toBeCloseTo(first.samples[0].reward, 2);
    await page.screenshot({ path: path.join(SHOTS, 'online-run.png'), fullPage: true });
    await page.close();
  }, 300_000);

  browserIt('a pipeline\'s stage tree: each stage with its state and a link to its run', async () => {
    const { pipelineId } = await api<{ pipelineId: string }>('POST', '/pipelines', { pipeline: 'spin', config: example('spin'), pipelineId: uniqueId('dash-spin') });
    const done = await until('the pipeline to end', () => api<{ state: string; record: { stages: { name: string; runId: string | null }[] } | null }>('GET', `/pipelines/${pipelineId}`), (v) => v.state !== 'RUNNING', 240_000);
    const page = await signedIn();
    await page.goto(`${base}/#/pipelines/${pipelineId}`);
    await page.waitForSelector('#stages li');
    const stages = await page.$$eval('#stages li', (lis) => lis.map((li) => ({ name: li.getAttribute('data-stage'), run: li.querySelector('a')?.textContent ?? null })));
    expect(stages).toEqual(done.record!.stages.map((s) => ({ name: s.name, run: s.runId })));
    await page.click(`#stages li[data-kind=run] a`);
    await page.waitForSelector('.chart[data-title="training loss"]');
    await page.goto(`${base}/#/pipelines/${pipelineId}`);
    await page.waitForSelector('#stages li');
    await page.screenshot({ path: path.join(SHOTS, 'pipeline.png'), fullPage: true });
    await page.close();
  }, 300_000);
});
