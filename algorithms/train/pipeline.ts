/**
 * Pipeline parallel for the language-model recipes: the model on each rank is one stage
 * (models/causal-lm.ts `pipelineStage`), the step's micro-batches go through the 1F1B schedule
 * (kernels/distributed/pipeline.ts), the last stage computes the loss, and the tied embedding's
 * two copies (first and last stage) get the sum of their gradients.
 */
import { runOneFOneB } from '../../kernels/distributed/index.js';
import type { ProcessGroup } from '../../kernels/distributed/index.js';
import { dispose, noGrad, tensor, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import { TIED_EMBEDDING, hasTiedEmbedding } from '../../models/causal-lm.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobsFromLogits } from '../../models/logprobs.js';
import type { SequenceBatch } from '../../models/logprobs.js';
import { ConfigError } from '../errors.js';

/** One rank's part in a pipeline: its stage's group, and the first and last stages' group for the tied embedding. */
export interface PipelineParallel {
  group: ProcessGroup;
  /** Stages 0 and S−1 (the pipeline group itself when S = 2); null without a tied embedding or with one stage. */
  embeddingGroup: ProcessGroup | null;
}

/**
 * Forward and backward of `micros` through the pipeline; `lossOf` turns a micro-batch's token
 * log-probs [m, T−1] into its share of the step's loss. Resolves to the step's loss on every stage.
 */
export async function pipelineLmStep(model: CausalLM, pp: PipelineParallel, micros: readonly SequenceBatch[], lossOf: (lp: Tensor, i: number) => Tensor): Promise<number> {
  const stage = model.pipeline;
  if (!stage || !model.stageForward) throw new ConfigError('pipeline parallel: the model was not built as a pipeline stage');
  const C = model.config.hiddenSize;
  const losses = await runOneFOneB({
    group: pp.group,
    backend: model.parameters()[0].backend,
    microBatches: micros.length,
    activationShape: (i) => [micros[i].ids.length, micros[i].ids[0].length, C],
    forward: (i, input) => model.stageForward!(input ?? tensor(micros[i].ids.flat(), [micros[i].ids.length, micros[i].ids[0].length], { dtype: 'i32' })),
    loss: (i, logits) => lossOf(logprobsFromLogits(model, logits, micros[i]), i),
  });
  await reduceTiedEmbedding(model, pp);
  return broadcastLoss(pp.group, losses.reduce((a, b) => a + b, 0));
}

/**
 * Forward only (evaluation): each micro-batch through the stages in turn, `valueOf` on the last
 * stage's logits; resolves to the sum of the values on every stage.
 */
export async function pipelineForwardSum(model: CausalLM, pp: PipelineParallel, micros: readonly SequenceBatch[], valueOf: (lp: Tensor) => Tensor): Promise<number> {
  const stage = model.pipeline;
  if (!stage || !model.stageForward) throw new ConfigError('pipeline parallel: the model was not built as a pipeline stage');
  const C = model.config.hiddenSize;
  let total = 0;
  for (const micro of micros) {
    const [m, T] = [micro.ids.length, micro.ids[0].length];
    let input: Tensor | null = null;
    if (!stage.first) {
      input = tensor(new Float32Array(m * T * C), [m, T, C]); // [m, T, C] from the stage before
      await pp.group.recv(input, stage.stage - 1);
    }
    const out = noGrad(() => tidy(() => {
      const y = model.stageForward!(input ?? tensor(micro.ids.flat(), [m, T], { dtype: 'i32' })); // [m, T, C] or [m, T, V]
      return stage.last ? valueOf(logprobsFromLogits(model, y, micro)) : y; // [] or [m, T, C]
    }));
    if (stage.last) total += await out.item();
    else await pp.group.send(out, stage.stage + 1);
    dispose([out, input]);
  }
  return broadcastLoss(pp.group, total);
}

/** Both copies of a tied embedding get the sum of their gradients (Megatron's embedding group). */
async function reduceTiedEmbedding(model: CausalLM, pp: PipelineParallel): Promise<void> {
  const stage = model.pipeline!;
  if (!pp.embeddingGroup || !hasTiedEmbedding(model.config) || !(stage.first || stage.last)) return;
  const name = TIED_EMBEDDING[model.config.family];
  const weight = model.namedParameters().find(([n]) => n === name)?.[1];
  if (!weight?.grad) throw new ConfigError(`pipeline stage ${stage.stage}: the tied embedding ${name} has no gradient to sum with the other end's`);
  await pp.embeddingGroup.allReduce(weight.grad);
}

/** The last stage's value on every stage (as f64 bytes, so nothing is rounded). */
async function broadcastLoss(group: ProcessGroup, value: number): Promise<number> {
  const t = tensor(new Int32Array(Float64Array.of(value).buffer), [2], { dtype: 'i32' }); // [2] the f64's words
  await group.broadcast(t, group.world - 1);
  const words = Int32Array.from(await t.data());
  dispose(t);
  return new Float64Array(words.buffer)[0];
}
