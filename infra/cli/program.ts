/**
 * The `align` commands (commander). Each one is a thin shell over the run service
 * (infra/runs.ts), which the HTTP API shares: parse arguments, call one operation, print the
 * result as text or, with --json, as one line of JSON on stdout.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { defaultTemporalAddress } from '../temporal.js';
import { getRecipe, RECIPE_NAMES, RECIPES } from '../../algorithms/recipes/index.js';
import { exampleConfigYaml } from '../../algorithms/recipes/example-config.js';
import { checkRecipe, defaultStoreUri, parseQueues, RunService } from '../runs.js';
import type { RunView, StartOptions } from '../runs.js';
import { readConfigFile } from './config-file.js';
import { formatList, formatRollouts, formatStatus, formatSummary } from './format.js';
import { formatMetrics, metricsCsv } from './format-metrics.js';
import { LiveProgress } from './watch.js';
import { addPipelineCommands } from './pipeline-commands.js';

export interface GlobalOptions {
  address?: string;
  namespace?: string;
  queues?: string;
  store?: string;
  json?: boolean;
}

/** State of one invocation: the service (made on first use, closed by main) and the exit code. */
export interface CliContext {
  service?: RunService;
  exitCode: number;
  /** --json was given (known before parsing, for commander's own error messages). */
  json: boolean;
}

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const collect = (v: string, prev: string[] = []) => [...prev, v];
const RUN_ARG = 'the run id (as printed by align run, or listed by align list)';

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a non-negative integer.');
  return n;
}

function positiveInt(v: string): number {
  const n = nonNegativeInt(v);
  if (n === 0) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

const examples = (...lines: string[]) => `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

/** One line per recipe: name, kind, summary. */
const recipeLines = () => {
  const w = Math.max(...RECIPE_NAMES.map((n) => n.length));
  return RECIPE_NAMES.map((n) => `  ${n.padEnd(w)}  ${RECIPES[n].kind.padEnd(7)}  ${RECIPES[n].summary}`).join('\n');
};

/** Everything `align recipes <name>` says about one recipe. */
function describeRecipe(name: string): string {
  const r = getRecipe(name);
  const h = r.headline(r.schema.parse(r.example));
  const lines = [`${r.name} (${r.kind}): ${r.summary}`, `  paper      ${r.paper}`];
  for (const [role, spec] of Object.entries(r.roles)) lines.push(`  ${role.padEnd(11)}${spec!.description} (config: ${spec!.configField}${spec!.trains ? ', trained' : ''})`);
  lines.push(r.kind === 'online' ? '  prompts' : '  data');
  for (const f of r.dataFormats) lines.push(`    - ${f}`);
  if (r.kind === 'offline' && r.precompute) lines.push(`  precompute ${r.precompute.description} (once per run, from ${r.precompute.role})`);
  if (r.kind === 'online') {
    lines.push('  iteration');
    r.stages.forEach((st, i) => lines.push(`    ${i + 1}. ${st.name.padEnd(11)}${st.description} (${st.role})`));
  }
  lines.push(`  headline   ${h.metric} (${h.better} is better)`);
  for (const [m, spec] of Object.entries(r.metrics)) lines.push(`    ${m}: ${spec.description}`);
  lines.push(`  example    align config ${r.name} > ${r.name}.yaml && align run ${r.name} --config ${r.name}.yaml`);
  return lines.join('\n');
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('align');
  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();
  const service = (cmd: Command): RunService => {
    const g = globals(cmd);
    ctx.service ??= new RunService({
      address: g.address ?? defaultTemporalAddress(), namespace: g.namespace, storeUri: g.store ?? defaultStoreUri(),
      queues: parseQueues(g.queues ?? process.env.ALIGN_QUEUES),
    });
    return ctx.service;
  };
  /** Text for people, or the data as one JSON line with --json. */
  const print = (cmd: Command, text: string, data: unknown) => console.log(globals(cmd).json ? JSON.stringify(data) : text);

  program
    .description('Aligner: start, watch and manage training runs (Temporal workflows).')
    .version(version, '-V, --version')
    .option('--address <host:port>', 'Temporal server (default: $TEMPORAL_ADDRESS, else 127.0.0.1:7233)')
    .option('--namespace <name>', 'Temporal namespace (default: default)')
    .option('--queues <control,compute>', 'task queues of an isolated worker fleet, as given to its workers (default: $ALIGN_QUEUES, else align-control,align-cpu)')
    .option('--store <uri>', 'artifact store the workers use, file:///… or s3://bucket/prefix (default: $ALIGN_STORE_URI, else .state/store)')
    .option('--json', 'machine-readable output: one JSON line on stdout (errors as JSON on stderr)')
    .showSuggestionAfterError()
    .exitOverride() // main maps commander's errors to exit code 2
    // Set before the commands are added, which inherit it: usage errors as one line (JSON with --json).
    .configureOutput({
      outputError: (str, write) => write(ctx.json ? `${JSON.stringify({ error: { kind: 'usage', type: 'UsageError', message: str.replace(/^error: /, '').trim().replace(/\n+/g, ' ') } })}\n` : `align: ${str.trimEnd().replace(/\n+/g, ' ')}\n`),
    })
    .addHelpText('after', `
Exit codes: 0 done (completed, or stopped by align cancel), 1 the run failed (or an unexpected
error), 2 bad input (config, arguments, unknown run, an operation the run's state does not allow),
3 a server is unreachable: the Temporal server or the artifact store (S3), named in the message.
${examples('align run sft --config sft.yaml --set trainer.lr=3e-4', 'align list', 'align status sft-20261128-051200-ab12')}`);

  program
    .command('run')
    .description('start a run of a recipe with a config, and follow it with a progress bar until it ends (Ctrl-C detaches; the run goes on)')
    .argument('<recipe>', `the recipe, one of: ${RECIPE_NAMES.join(', ')}`)
    .option('-c, --config <file>', 'config file, YAML (.yaml/.yml) or JSON (.json); relative paths in the config are taken from the current folder')
    .option('-s, --set <key=value>', 'override one config value (repeatable); the value is read as JSON when it parses (numbers, true, null), else as a string', collect)
    .option('-d, --detach', 'start the run and return at once, printing its id')
    .option('--run-id <id>', 'run id (default: <recipe>-<UTC date>-<time>-<4 hex>, e.g. sft-20261128-051200-ab12)')
    .addHelpText('after', () => `\nRecipes:\n${recipeLines()}\n${examples('align config dpo > dpo.yaml   # a complete config with every default', 'align run sft --config sft.yaml', 'align run dpo --config dpo.yaml --set dpo.beta=0.1 --set trainer.maxSteps=500 --detach')}`)
    .action(async (recipe: string, o: { config?: string; set?: string[]; detach?: boolean; runId?: string }, cmd: Command) => {
      checkRecipe(recipe); // before reading the file: the recipe is the first thing to be wrong
      const raw = o.config ? await readConfigFile(o.config) : {};
      const start = (extra: StartOptions) => service(cmd).startRun(recipe, raw, o.set ?? [], { runId: o.runId, baseDir: process.cwd(), ...extra });
      if (o.detach) {
        const r = await start({ detach: true });
        print(cmd, `started run ${r.runId} (${r.recipe})\n  follow it: align status ${r.runId}`, { runId: r.runId, recipe: r.recipe });
      } else {
        ctx.exitCode = await follow(cmd, (extra) => start({ ...extra, detach: false }).then((r) => r.final!));
      }
    });

  program
    .command('recipes')
    .description('list the recipes (one line each), or describe one: its roles, data formats, precomputed inputs and metrics')
    .argument('[recipe]', 'a recipe to describe')
    .addHelpText('after', examples('align recipes', 'align recipes kd'))
    .action((recipe: string | undefined, _o: unknown, cmd: Command) => {
      if (recipe) return print(cmd, describeRecipe(recipe), { ...getRecipe(recipe), schema: undefined });
      print(cmd, `${recipeLines()}\n\nalign recipes <name> describes one; align config <name> prints a config with every default.`,
        RECIPE_NAMES.map((n) => ({ name: n, kind: RECIPES[n].kind, summary: RECIPES[n].summary })));
    });

  program
    .command('config')
    .description('print a complete, commented example config of a recipe (YAML, every field with its default), runnable on the tiny fixture models from the repository root')
    .argument('<recipe>', 'the recipe')
    .addHelpText('after', examples('align config dpo > dpo.yaml', 'align run dpo --config dpo.yaml'))
    .action((recipe: string) => {
      process.stdout.write(exampleConfigYaml(getRecipe(recipe) as never));
    });

  program
    .command('status')
    .description('show a run: state, step, loss, throughput, last validation and checkpoint; once closed, its result or failure with the cause')
    .argument('<run>', RUN_ARG)
    .addHelpText('after', examples('align status sft-20261128-051200-ab12', 'align status sft-20261128-051200-ab12 --json'))
    .action(async (run: string, _o: unknown, cmd: Command) => {
      const view = await service(cmd).getStatus(run);
      // The full loss history from the metrics ledger; the live recent steps when the store cannot be read.
      const history = await service(cmd).metrics(run).catch(() => null);
      const losses = history && history.steps.length > 1 && !view.progress?.stage ? history.steps.map((x) => x.loss) : undefined;
      print(cmd, formatStatus(view, losses), view);
    });

  program
    .command('metrics')
    .description('a run\'s full metrics history from the metrics ledger: a loss chart, learning rate, grad norm, the online curves (reward, KL, entropy, length), validations and held-out evaluations, continued across the runs it resumed from')
    .argument('<run>', RUN_ARG)
    .option('--from <step>', 'first step to show', nonNegativeInt)
    .option('--to <step>', 'last step to show', nonNegativeInt)
    .option('--csv', 'print the steps as CSV (step, loss, lr, gradNorm, tokens, then every metric)')
    .addHelpText('after', examples('align metrics sft-20261128-051200-ab12', 'align metrics ppo-20261201-101500-ab12 --from 10 --csv > ppo.csv', 'align metrics sft-20261128-051200-ab12 --json'))
    .action(async (run: string, o: { from?: number; to?: number; csv?: boolean }, cmd: Command) => {
      const history = await service(cmd).metrics(run, { from: o.from, to: o.to });
      print(cmd, o.csv ? metricsCsv(history) : formatMetrics(run, history), history);
    });

  program
    .command('rollouts')
    .description('print what an online run\'s policy said at an iteration: prompt, response, reward, and which samples trained, from the rollout ledger')
    .argument('<run>', RUN_ARG)
    .option('-i, --iteration <n>', 'the iteration, from 0 (default: the newest)', nonNegativeInt)
    .option('-n, --limit <n>', 'samples to show', positiveInt, 16)
    .addHelpText('after', examples('align rollouts ppo-20261201-101500-ab12', 'align rollouts ppo-20261201-101500-ab12 --iteration 0 --limit 64', 'align rollouts ppo-20261201-101500-ab12 --json'))
    .action(async (run: string, o: { iteration?: number; limit: number }, cmd: Command) => {
      const view = await service(cmd).rollouts(run, o.iteration);
      print(cmd, formatRollouts(view, o.limit), view);
    });

  program
    .command('list')
    .description('list runs, newest first, with their state and the run each was resumed from')
    .option('-n, --limit <n>', 'how many runs to show', positiveInt, 20)
    .addHelpText('after', examples('align list', 'align list --limit 100 --json'))
    .action(async (o: { limit: number }, cmd: Command) => {
      const runs = await service(cmd).listRuns({ limit: o.limit });
      print(cmd, formatList(runs), runs);
    });

  const signals = {
    pause: ['pause a running run: it holds after its current chunk (nothing is lost)', (id: string) => `pause requested: run ${id} holds after its current chunk; continue it with: align resume ${id}`],
    resume: ['resume a paused run', (id: string) => `resume requested: run ${id} continues`],
    cancel: ['stop a run gracefully: it ends after its current chunk and checkpoint, as "stopped"', (id: string) => `stop requested: run ${id} ends after its current chunk, keeping its checkpoints`],
  } as const;
  for (const [op, [description, done]] of Object.entries(signals) as [keyof typeof signals, (typeof signals)[keyof typeof signals]][]) {
    program
      .command(op)
      .description(description)
      .argument('<run>', RUN_ARG)
      .addHelpText('after', examples(`align ${op} sft-20261128-051200-ab12`))
      .action(async (run: string, _o: unknown, cmd: Command) => {
        const r = await service(cmd)[op](run);
        print(cmd, done(run), r);
      });
  }

  program
    .command('terminate')
    .description('end a stuck run at once (no final chunk, no export); its checkpoints stay, so resume-failed can continue it')
    .argument('<run>', RUN_ARG)
    .option('--reason <text>', 'recorded in the run\'s history', 'terminated with align terminate')
    .addHelpText('after', examples('align terminate sft-20261128-051200-ab12 --reason "worker pool drained"'))
    .action(async (run: string, o: { reason: string }, cmd: Command) => {
      const r = await service(cmd).terminate(run, o.reason);
      print(cmd, `run ${run} terminated; continue it from its last checkpoint with: align resume-failed ${run}`, r);
    });

  program
    .command('resume-failed')
    .description('start a NEW run from a failed (or terminated) run\'s last valid checkpoint, with the same config; the new run records the old one as its parent')
    .argument('<run>', 'the failed run')
    .option('-d, --detach', 'start the new run and return at once, printing its id')
    .option('--run-id <id>', 'id of the new run (default: generated)')
    .addHelpText('after', examples('align resume-failed sft-20261128-051200-ab12'))
    .action(async (run: string, o: { detach?: boolean; runId?: string }, cmd: Command) => {
      const svc = service(cmd);
      const announce = (r: { runId: string; resumeFrom: { step: number; uri: string }; skipped: { step: number; reason: string }[] }) => {
        if (globals(cmd).json) return;
        for (const s of r.skipped) console.error(`align: skipped checkpoint at step ${s.step}: ${s.reason}`);
        console.error(`started run ${r.runId}, resuming run ${run} from step ${r.resumeFrom.step} (${r.resumeFrom.uri})`);
      };
      if (o.detach) {
        const r = await svc.resumeFailed(run, { runId: o.runId, detach: true });
        announce(r);
        print(cmd, `follow it: align status ${r.runId}`, r);
      } else {
        ctx.exitCode = await follow(cmd, async (extra) => {
          const r = await svc.resumeFailed(run, { runId: o.runId, detach: true });
          announce(r);
          return svc.watch(r.runId, extra);
        }, true);
      }
    });

  program
    .command('export')
    .description('write a checkpoint of a run as a Hugging Face model folder (config.json, model.safetensors, tokenizer files; no optimizer state), verified against its manifest')
    .argument('<run>', RUN_ARG)
    .option('--step <n>', 'the checkpoint\'s step (default: the newest valid checkpoint)', nonNegativeInt)
    .requiredOption('-o, --out <dir>', 'the folder to write; it must not exist or be empty')
    .addHelpText('after', examples('align export sft-20261128-051200-ab12 --out ./my-model', 'align export sft-20261128-051200-ab12 --step 200 --out ./step-200'))
    .action(async (run: string, o: { step?: number; out: string }, cmd: Command) => {
      const r = await service(cmd).exportRun(run, { step: o.step, outDir: o.out });
      for (const s of globals(cmd).json ? [] : r.skipped) console.error(`align: skipped checkpoint at step ${s.step}: ${s.reason}`);
      print(cmd, `wrote run ${run} at step ${r.step} to ${r.outDir}: ${r.files.join(', ')}`, r);
    });

  addPipelineCommands(program, {
    service, print, json: (cmd) => !!globals(cmd).json, setExitCode: (code) => void (ctx.exitCode = code), positiveInt,
  });

  /**
   * Follows a run to its end with the live display; Ctrl-C stops following (a second one exits).
   * Returns the exit code: 0 completed or stopped, 1 failed, 0 when detached by the user.
   */
  async function follow(cmd: Command, watch: (o: Pick<StartOptions, 'onProgress' | 'signal'>) => Promise<RunView>, announced = false): Promise<number> {
    const json = !!globals(cmd).json;
    const live = new LiveProgress(json);
    const abort = new AbortController();
    const onSigint = () => (abort.signal.aborted ? process.exit(130) : abort.abort());
    process.on('SIGINT', onSigint);
    try {
      const final = await watch({
        signal: abort.signal,
        onProgress: (v) => {
          if (!announced) {
            announced = true;
            if (json) console.log(JSON.stringify({ event: 'started', runId: v.runId, recipe: v.recipe }));
            else console.error(`started run ${v.runId} (${v.recipe}); Ctrl-C stops following, the run goes on`);
          }
          live.update(v);
        },
      });
      live.stop();
      if (final.state === 'RUNNING') {
        print(cmd, `stopped following run ${final.runId}; it goes on. Follow it: align status ${final.runId}; stop it: align cancel ${final.runId}`, { event: 'detached', runId: final.runId });
        return 0;
      }
      print(cmd, formatSummary(final, live.lossSeries()), { event: 'finished', ...final, losses: live.lossSeries() });
      return final.state === 'COMPLETED' || final.state === 'STOPPED' ? 0 : 1;
    } finally {
      live.stop();
      process.off('SIGINT', onSigint);
    }
  }

  return program;
}
