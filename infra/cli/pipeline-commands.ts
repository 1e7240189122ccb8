/**
 * `align pipeline run|resume|status|list|config`, `align schedule create|list|describe|pause|
 * unpause|trigger|delete` (thin shells over infra/pipelines.ts and infra/schedules.ts, which the
 * HTTP API shares), and `align generate` (sampling in this process, steered with SteerLM
 * attributes: infra/generate.ts).
 */
import { Command } from 'commander';
import { getPipeline, PIPELINE_NAMES, PIPELINES } from '../../algorithms/pipelines/index.js';
import { pipelineExampleYaml } from '../../algorithms/pipelines/example-config.js';
import { PipelineService } from '../pipelines.js';
import type { PipelineView } from '../pipelines.js';
import { OVERLAP_POLICIES, ScheduleService } from '../schedules.js';
import type { OverlapName } from '../schedules.js';
import { UsageError } from '../runs.js';
import type { RunService } from '../runs.js';
import { readConfigFile } from './config-file.js';
import os from 'node:os';
import path from 'node:path';
import { generateSamples } from '../generate.js';
import { progressBar } from '../progress.js';
import { RunStore } from '../../store/run-store.js';
import { formatPipeline, formatPipelineList, formatSchedule, formatScheduleList } from './format-pipelines.js';

export interface CommandDeps {
  service(cmd: Command): RunService;
  print(cmd: Command, text: string, data: unknown): void;
  json(cmd: Command): boolean;
  setExitCode(code: number): void;
  positiveInt(v: string): number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const examples = (...lines: string[]) => `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
const pipelineLines = () => PIPELINE_NAMES.map((n) => `  ${n.padEnd(14)} ${PIPELINES[n].summary}`).join('\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function addPipelineCommands(program: Command, d: CommandDeps): void {
  const pipelines = (cmd: Command) => new PipelineService(d.service(cmd));
  const schedules = (cmd: Command) => new ScheduleService(d.service(cmd));

  /**
   * Prints each stage as it starts and ends, with a progress bar of the running stage's steps (or
   * shards), until the pipeline closes; returns the exit code. Ctrl-C stops following.
   */
  async function follow(cmd: Command, id: string): Promise<number> {
    const svc = pipelines(cmd);
    const json = d.json(cmd);
    const seen = new Map<string, string>();
    // A holder, so that the closure's resets are seen by the loop.
    const live: { bar: { stage: string; bar: ReturnType<typeof progressBar> } | null } = { bar: null };
    const stopBar = () => {
      live.bar?.bar.stop();
      live.bar = null;
    };
    let following = true;
    const onSigint = () => (following ? (following = false) : process.exit(130));
    process.on('SIGINT', onSigint);
    try {
      for (;;) {
        const v: PipelineView = await svc.status(id, { timings: false });
        for (const s of v.record?.stages ?? []) {
          const key = `${s.state}:${s.runId}`;
          if (seen.get(s.name) === key || s.state === 'pending') continue;
          seen.set(s.name, key);
          if (s.state !== 'running' && live.bar?.stage === s.name) {
            live.bar.bar.update(live.bar.bar.getTotal()); // it ended between two polls
            stopBar();
          }
          if (!json) console.error(`${s.state === 'running' ? '▶' : s.state === 'completed' ? '✔' : '✘'} ${s.name} (${s.kind} ${s.what}) ${s.runId ?? ''}${s.output?.summary ? `: ${s.output.summary}` : ''}${s.error ? `: ${s.error}` : ''}`);
        }
        const p = v.current?.run?.progress;
        if (!json && v.current && p && p.maxSteps > 0) {
          if (live.bar?.stage !== v.current.stage) {
            stopBar();
            live.bar = { stage: v.current.stage, bar: progressBar(v.current.stage.padEnd(14), p.maxSteps) };
          }
          live.bar.bar.update(p.step, { loss: p.lastLoss?.toFixed(3) ?? '-', tps: p.tokensPerSecond ? Math.round(p.tokensPerSecond).toLocaleString() : '-' });
        }
        if (v.state !== 'RUNNING') {
          stopBar();
          const final = await svc.status(id); // with each stage's wall time
          d.print(cmd, formatPipeline(final), final);
          return final.state === 'COMPLETED' ? 0 : 1;
        }
        if (!following) {
          stopBar();
          d.print(cmd, `stopped following pipeline ${id}; it goes on. Follow it: align pipeline status ${id}`, { event: 'detached', pipelineId: id });
          return 0;
        }
        await sleep(1000);
      }
    } finally {
      stopBar();
      process.off('SIGINT', onSigint);
    }
  }

  const pipeline = program.command('pipeline').description('multi-stage pipelines (SFT → RM → PPO, iterative DPO, SPIN, rejection-sampling rounds, …): each stage a child run, resumable on its own');
  pipeline.addHelpText('after', () => `\nPipelines:\n${pipelineLines()}\n${examples('align pipeline config rlhf > rlhf.yaml', 'align pipeline run rlhf --config rlhf.yaml', 'align pipeline status rlhf-20261202-101500-ab12', 'align pipeline resume rlhf-20261202-101500-ab12')}`);

  pipeline
    .command('run')
    .description('validate a pipeline config (every stage planned on paper), start the pipeline, and follow its stages until it ends (Ctrl-C detaches; it goes on)')
    .argument('<pipeline>', `one of: ${PIPELINE_NAMES.join(', ')}`)
    .option('-c, --config <file>', 'pipeline config, YAML or JSON (align pipeline config <pipeline> prints one); relative paths are taken from the current folder')
    .option('-s, --set <key=value>', 'override one config value (repeatable), e.g. --set rounds=3 --set dpo.dpo.beta=0.1', collect)
    .option('-d, --detach', 'start it and return at once, printing its id')
    .option('--pipeline-id <id>', 'pipeline id (default: <pipeline>-<UTC date>-<time>-<4 hex>)')
    .addHelpText('after', () => `\nPipelines:\n${pipelineLines()}\n${examples('align pipeline run rlhf --config examples/pipelines/rlhf.yaml', 'align pipeline run iterative-dpo --config examples/pipelines/iterative-dpo.yaml --set rounds=3 --detach')}`)
    .action(async (name: string, o: { config?: string; set?: string[]; detach?: boolean; pipelineId?: string }, cmd: Command) => {
      getPipeline(name);
      const raw = o.config ? await readConfigFile(o.config) : {};
      const r = await pipelines(cmd).start(name, raw, o.set ?? [], { pipelineId: o.pipelineId, baseDir: process.cwd() });
      if (o.detach) return d.print(cmd, `started pipeline ${r.pipelineId} (${r.pipeline}): stages ${r.stages.join(' → ')}\n  follow it: align pipeline status ${r.pipelineId}`, r);
      if (!d.json(cmd)) console.error(`started pipeline ${r.pipelineId}: ${r.stages.join(' → ')}`);
      d.setExitCode(await follow(cmd, r.pipelineId));
    });

  pipeline
    .command('resume')
    .description('start a failed (or terminated) pipeline again under the same id: completed stages are skipped, the failed stage continues from its newest checkpoint')
    .argument('<id>', 'the pipeline id')
    .option('-d, --detach', 'return at once')
    .addHelpText('after', examples('align pipeline resume rlhf-20261202-101500-ab12'))
    .action(async (id: string, o: { detach?: boolean }, cmd: Command) => {
      const r = await pipelines(cmd).resume(id);
      if (o.detach) return d.print(cmd, `resumed pipeline ${id} (attempt ${r.attempt + 1}): skipping ${r.skipped.join(', ') || 'nothing'}; resuming at ${r.resumes}`, r);
      if (!d.json(cmd)) console.error(`resumed pipeline ${id}: skipping ${r.skipped.join(', ') || 'nothing'}; resuming at ${r.resumes}`);
      d.setExitCode(await follow(cmd, id));
    });

  pipeline
    .command('status')
    .description('show a pipeline\'s stage tree: each stage\'s state, child run, inputs, output and measured effect')
    .argument('<id>', 'the pipeline id')
    .addHelpText('after', examples('align pipeline status rlhf-20261202-101500-ab12', 'align pipeline status rlhf-20261202-101500-ab12 --json'))
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const v = await pipelines(cmd).status(id);
      d.print(cmd, formatPipeline(v), v);
    });

  pipeline
    .command('list')
    .description('list pipelines, newest first')
    .option('-n, --limit <n>', 'how many', d.positiveInt, 20)
    .addHelpText('after', examples('align pipeline list', 'align pipeline list --limit 100 --json'))
    .action(async (o: { limit: number }, cmd: Command) => {
      const list = await pipelines(cmd).list({ limit: o.limit });
      d.print(cmd, formatPipelineList(list), list);
    });

  pipeline
    .command('config')
    .description('print an example config of a pipeline (YAML), runnable on the tiny fixture models from the repository root')
    .argument('<pipeline>', `one of: ${PIPELINE_NAMES.join(', ')}`)
    .addHelpText('after', examples('align pipeline config steerlm > steerlm.yaml', 'align pipeline run steerlm --config steerlm.yaml'))
    .action((name: string) => {
      process.stdout.write(pipelineExampleYaml(getPipeline(name)));
    });

  program
    .command('generate')
    .description('sample from a model in this process (no workers needed); --attributes steers a SteerLM model, --attribute-model scores each sample')
    .option('-m, --model <dir|uri>', 'a Hugging Face folder (local path or s3:// URI)')
    .option('-r, --run <run>', 'or a run: its export in the store (e.g. a pipeline\'s sft stage, <pipeline>.sft)')
    .requiredOption('-p, --prompt <text>', 'the user turn to answer')
    .option('-a, --attributes <list>', 'SteerLM attribute values, e.g. quality=4,toxicity=0 (every attribute the model was steered with)')
    .option('--attribute-model <dir|uri>', 'an attribute model: orders the label as it was trained and scores each sample')
    .option('-n, --samples <n>', 'samples', d.positiveInt, 1)
    .option('--max-new-tokens <n>', 'longest response, in tokens', d.positiveInt, 64)
    .option('-t, --temperature <x>', 'sampling temperature', Number, 0.7)
    .option('--seed <n>', 'seed of the first sample (the i-th uses seed + i)', Number, 0)
    .addHelpText('after', examples('align generate --run steerlm-20261202-101500-ab12.sft --prompt "Say something about cats" --attributes shouting=4,length=2 -n 4', 'align generate --model ./my-model --prompt "Hi"'))
    .action(async (o: { model?: string; run?: string; prompt: string; attributes?: string; attributeModel?: string; samples: number; maxNewTokens: number; temperature: number; seed: number }, cmd: Command) => {
      if ((o.model === undefined) === (o.run === undefined)) throw new UsageError('give exactly one of --model (a folder or URI) and --run (a run whose export to use)');
      const svc = d.service(cmd);
      const model = o.model ?? svc.store.uriOf(`runs/${o.run}/export/`);
      const store = new RunStore(svc.store, path.join(os.tmpdir(), 'aligner-input-cache'));
      const r = await generateSamples(store, { model, prompt: o.prompt, attributes: o.attributes, attributeModel: o.attributeModel, samples: o.samples, maxNewTokens: o.maxNewTokens, temperature: o.temperature, seed: o.seed });
      const lines = [`${r.label ? `label ${r.label}; ` : ''}${r.samples.length} sample(s) from ${r.model}`];
      r.samples.forEach((s, i) => {
        lines.push(`[${i + 1}] ${s.text}${s.finish === 'length' ? ' …' : ''}`);
        if (s.predicted) lines.push(`    predicted: ${Object.entries(s.predicted).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
      });
      d.print(cmd, lines.join('\n'), r);
    });

  const schedule = program.command('schedule').description('put pipeline rounds on a Temporal Schedule: each round starts from the previous round\'s output (found through the schedule\'s lineage)');
  schedule.addHelpText('after', examples('align schedule create nightly-rs --pipeline rs --every 6h --config rs-round.yaml', 'align schedule create steer --pipeline steerlm2 --cron "0 2 * * *" --config steerlm2.yaml', 'align schedule describe nightly-rs', 'align schedule pause nightly-rs'));

  schedule
    .command('create')
    .description('create a schedule whose every action runs one pipeline round; overlapping rounds are skipped by default')
    .argument('<name>', 'the schedule\'s name (letters, digits, . _ -)')
    .requiredOption('-p, --pipeline <pipeline>', `the pipeline of each round: ${PIPELINE_NAMES.join(', ')}`)
    .option('--every <interval>', 'an interval: 30s, 90m, 6h, 1d, 1h30m')
    .option('--cron <expr>', 'a 5-field cron expression in UTC ("0 */6 * * *"), or @hourly, @daily, @weekly …')
    .option('-c, --config <file>', 'the pipeline config of every round (YAML or JSON)')
    .option('-s, --set <key=value>', 'override one config value (repeatable)', collect)
    .option('--overlap <policy>', `what a round due while one runs does: ${OVERLAP_POLICIES.join(', ')}`, 'skip')
    .option('--paused', 'create it paused (start it with align schedule unpause)')
    .addHelpText('after', examples('align schedule create nightly-rs --pipeline rs --every 6h --config examples/pipelines/rs.yaml', 'align schedule create steer --pipeline steerlm2 --cron "0 2 * * *" --config steerlm2.yaml --paused'))
    .action(async (name: string, o: { pipeline: string; every?: string; cron?: string; config?: string; set?: string[]; overlap: string; paused?: boolean }, cmd: Command) => {
      if (!(OVERLAP_POLICIES as readonly string[]).includes(o.overlap)) throw new UsageError(`--overlap must be one of ${OVERLAP_POLICIES.join(', ')}, got ${JSON.stringify(o.overlap)}`);
      const raw = o.config ? await readConfigFile(o.config) : {};
      const r = await schedules(cmd).create(name, { pipeline: o.pipeline, every: o.every, cron: o.cron, config: raw, sets: o.set ?? [], baseDir: process.cwd(), overlap: o.overlap as OverlapName, paused: o.paused });
      d.print(cmd, `created schedule ${r.name}: ${r.pipeline} rounds ${r.spec}${o.paused ? ' (paused)' : `; next round ${r.nextRuns[0] ?? '-'}`}\n  see it: align schedule describe ${r.name}`, r);
    });

  schedule
    .command('list')
    .description('list the pipeline schedules')
    .addHelpText('after', examples('align schedule list', 'align schedule list --json'))
    .action(async (_o: unknown, cmd: Command) => {
      const list = await schedules(cmd).list();
      d.print(cmd, formatScheduleList(list), list);
    });

  schedule
    .command('describe')
    .description('show a schedule: its spec, whether it is paused, its recent rounds (failed ones with why) and its lineage')
    .argument('<name>', 'the schedule')
    .addHelpText('after', examples('align schedule describe nightly-rs'))
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const v = await schedules(cmd).describe(name);
      d.print(cmd, formatSchedule(v), v);
    });

  const ops = {
    pause: 'stop starting rounds (a running round goes on)',
    unpause: 'start rounds again',
    trigger: 'start a round now (skipped while one runs, unless --overlap allow-all)',
    delete: 'delete the schedule (running rounds go on; the lineage stays in the store)',
  } as const;
  for (const [op, description] of Object.entries(ops) as [keyof typeof ops, string][]) {
    const c = schedule.command(op).description(description).argument('<name>', 'the schedule').addHelpText('after', examples(`align schedule ${op} nightly-rs`));
    if (op === 'pause' || op === 'unpause') c.option('--note <text>', 'recorded on the schedule');
    if (op === 'trigger') c.option('--overlap <policy>', `${OVERLAP_POLICIES.join(', ')}`, 'skip');
    c.action(async (name: string, o: { note?: string; overlap?: string }, cmd: Command) => {
      const svc = schedules(cmd);
      const r = op === 'pause' ? await svc.pause(name, o.note) : op === 'unpause' ? await svc.unpause(name, o.note) : op === 'trigger' ? await svc.trigger(name, (o.overlap ?? 'skip') as OverlapName) : await svc.delete(name);
      d.print(cmd, `schedule ${name}: ${op === 'delete' ? 'deleted' : op === 'trigger' ? 'round triggered' : `${op}d`}`, r);
    });
  }
}
