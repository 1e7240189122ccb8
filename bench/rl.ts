/**
 * One PPO iteration through Temporal, phase by phase, on a model of d=512, 8 layers, vocab 32000
 * (random init, fp32): 64 prompts × 128 new tokens, a programmatic reward, the critic from the
 * same backbone. Generation throughput is compared with transformers' generate() on the same
 * shapes in the same run (bench/python/generate.py, KV cache, PyTorch CPU, same threads), and the
 * orchestration share is the iteration's wall time not spent inside its stage activities.
 *
 *   npm run bench -- rl [--prompts 64] [--prompt 64] [--new 128] [--iterations 2] [--no-torch]
 *
 * The first iteration pays for loading the models and preparing the data; the figures are the last one's.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { parseRecipeConfig } from '../algorithms/recipes/index.js';
import type { RunResult } from '../activities/types.js';
import { connectTemporal } from '../infra/temporal.js';
import { startWorkers } from '../infra/workers/worker.js';
import { Generator } from '../kernels/index.js';
import { getNumThreads, setNumThreads } from '../kernels/native-backend.js';
import type { ModelConfig } from '../models/config.js';
import { createModel, savePretrained } from '../models/pretrained.js';
import { openStore } from '../store/index.js';
import { RunStore } from '../store/run-store.js';
import { progressQuery } from '../workflows/training.js';
import { transformersGenerate } from './generate.js';
import { devServer } from './overhead.js';

export const help = `bench rl: one PPO iteration (d=512, 8 layers, vocab 32000) through Temporal, per phase, with generation against transformers.
Options:
  --prompts N     prompts per iteration (default 64)
  --prompt N      prompt length in tokens (default 64)
  --new N         new tokens per response (default 128)
  --iterations N  iterations to run; the last is reported (default 2)
  --threads N     compute threads (default: all cores, ${os.availableParallelism()} here)
  --no-torch      skip the transformers baseline`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PHASES = ['generate', 'score', 'logprobs', 'values', 'advantages', 'train', 'checkpoint'];

/** A word-level tokenizer of exactly V tokens (w2 … w{V−1}, <unk>, <eos>): the random model's ids all decode. */
function writeTokenizer(dir: string, V: number): void {
  const vocab: Record<string, number> = { '<unk>': 0, '<eos>': 1 };
  for (let i = 2; i < V; i++) vocab[`w${i}`] = i;
  const eos = { id: 1, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [eos], normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  }));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<eos>', pad_token: '<unk>' }));
}

type History = Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;
const seconds = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) + (t?.nanos ?? 0) / 1e9;

/**
 * From the workflow history: the last iteration's span (its generateRollouts scheduled → its
 * trainOnRollouts completed) and the time activities of that span spent running (started →
 * completed). What is left is orchestration: scheduling, dispatch, workflow tasks, payloads.
 */
function lastIterationTiming(h: History): { span: number; busy: number } {
  const events = h.events ?? [];
  const scheduled = new Map<string, { name: string; at: number }>();
  const started = new Map<string, number>();
  let from = 0, to = 0, busy = 0;
  const runs: { from: number; to: number }[] = [];
  for (const e of events) {
    const at = seconds(e.eventTime);
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes) {
      const name = e.activityTaskScheduledEventAttributes.activityType?.name ?? '';
      scheduled.set(id, { name, at });
      if (name === 'generateRollouts') from = at;
    } else if (e.activityTaskStartedEventAttributes) {
      started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), at);
    } else if (e.activityTaskCompletedEventAttributes) {
      const sid = String(e.activityTaskCompletedEventAttributes.scheduledEventId);
      runs.push({ from: started.get(sid) ?? at, to: at });
      if (scheduled.get(sid)?.name === 'trainOnRollouts') to = at;
    }
  }
  for (const r of runs) if (r.from >= from && r.to <= to) busy += r.to - r.from;
  return { span: to - from, busy };
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args: argv,
    options: {
      prompts: { type: 'string', default: '64' }, prompt: { type: 'string', default: '64' }, new: { type: 'string', default: '128' },
      iterations: { type: 'string', default: '2' }, threads: { type: 'string' }, 'no-torch': { type: 'boolean', default: false },
    },
  });
  if (values.threads) setNumThreads(Number(values.threads));
  const threads = getNumThreads();
  const B = Number(values.prompts), P = Number(values.prompt), N = Number(values.new), iterations = Number(values.iterations);
  const config: ModelConfig = {
    family: 'llama', vocabSize: 32000, hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 8, intermediateSize: 1376,
    maxPositionEmbeddings: P + N + 8, rmsNormEps: 1e-5,
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-bench-rl-'));
  const server = process.env.TEMPORAL_ADDRESS ? null : await devServer(dir);
  const address = process.env.TEMPORAL_ADDRESS ?? server!.address;
  try {
    process.stderr.write('  building the model…\n');
    const modelDir = path.join(dir, 'model');
    mkdirSync(modelDir);
    const gen = new Generator(0);
    const model = createModel(config, { gen });
    await savePretrained(model, modelDir);
    model.dispose();
    writeTokenizer(modelDir, config.vocabSize);
    // Prompts of P random words (NeMo-Aligner's verbatim `text`), enough for every iteration after the held-out tenth.
    const lines = Array.from({ length: Math.ceil((B * 1.2) / 0.9) }, () => JSON.stringify({ text: Array.from({ length: P }, () => `w${2 + gen.int(config.vocabSize - 2)}`).join(' ') }));
    const data = path.join(dir, 'prompts.jsonl');
    writeFileSync(data, `${lines.join('\n')}\n`);

    const run = parseRecipeConfig('ppo', {
      model: modelDir, data: { train: data, validationFraction: 0.1 }, reward: { function: path.join(root, 'bench/rl-reward.ts') },
      trainer: { maxSteps: iterations, globalBatchSize: 16, microBatchSize: 8, lr: 1e-5, minLr: 1e-6, maxLength: P + N + 4 },
      rollout: { promptsPerIteration: B, maxNewTokens: N, stopStrings: [], maskTruncated: false, shardRows: B, microBatch: B },
    });
    const store = new RunStore(openStore(`file://${path.join(dir, 'store')}`), path.join(dir, 'cache'));
    const queues = { control: `bench-rl-control-${process.pid}`, compute: `bench-rl-cpu-${process.pid}` };
    const workers = await startWorkers({ address, store, role: 'all', workerId: `bench-rl-${process.pid}`, queues });
    const client = new Client({ connection: await connectTemporal(address) });
    let result: RunResult;
    let timing: { span: number; busy: number };
    try {
      const runId = `bench-rl-${Date.now()}`;
      const handle = await client.workflow.start('ppoWorkflow', { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe: 'ppo', config: run, queues }] });
      let last = 0, done = false;
      const finished = handle.result().finally(() => (done = true));
      while (!done) {
        const p = await handle.query(progressQuery).catch(() => null);
        if (p && p.step > last) process.stderr.write(`  iteration ${(last = p.step)} of ${iterations} done\n`);
        await new Promise((r) => setTimeout(r, 200));
      }
      result = await finished;
      timing = lastIterationTiming(await handle.fetchHistory());
    } finally {
      await workers.shutdown();
      await client.connection.close();
    }
    const m = result.validations.at(-1)!.metrics;
    const phases = Object.fromEntries(PHASES.map((p) => [p, +(m[`${p}Seconds`] ?? 0).toFixed(3)]));
    // trainSeconds includes the checkpoint; the stage activities' total is the sum without it.
    const inStages = PHASES.filter((p) => p !== 'checkpoint').reduce((s, p) => s + (m[`${p}Seconds`] ?? 0), 0);
    const generated = m.responseLength * B;
    const ours = { generate_tokens_per_s: +(generated / m.generateSeconds).toFixed(1), iteration_s: +timing.span.toFixed(3), in_stages_s: +inStages.toFixed(3) };
    const out: Record<string, unknown> = {
      bench: 'rl', cpu: os.cpus()[0]?.model ?? 'unknown', threads, model: { ...config, family: undefined }, prompts: B, prompt_tokens: P, new_tokens: N,
      phases_s: phases, ours, orchestration_share: +(1 - timing.busy / timing.span).toFixed(4), reward: +m.reward.toFixed(4),
    };
    if (!values['no-torch']) {
      const baseline = transformersGenerate(threads, B, P, N);
      out.baseline = baseline;
      if (!('error' in baseline)) out.generate_ratio_vs_transformers = +(ours.generate_tokens_per_s / Number(baseline.tokens_per_s)).toFixed(3);
    }
    return out;
  } finally {
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
