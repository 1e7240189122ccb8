/**
 * Pipeline parallel with the 1F1B schedule (Narayanan et al. 2021, "Efficient Large-Scale
 * Language Model Training on GPU Clusters Using Megatron-LM", §2.2; PipeDream-Flush): stage s of
 * S runs S − s − 1 warm-up forwards, then alternates one forward and one backward, then drains
 * the remaining backwards. At most S − s micro-batches' activations are alive at once.
 *
 * Activations travel forward and their gradients backward between neighbouring stages. In the
 * steady state a stage sends one way while receiving the other (`sendRecv`), so messages larger
 * than a mailbox never deadlock. Every call is queued on the stream without awaiting, like the
 * kernels around it; the Promises are awaited once at the end of the step.
 */
import { backward } from '../autograd.js';
import { alloc } from '../op.js';
import { captureScope, dispose, tidy } from '../tensor.js';
import type { Tensor } from '../tensor.js';
import type { Backend } from '../backend.js';
import type { ProcessGroup } from './process-group.js';

export interface PipelineSchedule {
  /** The pipeline group: rank = stage. */
  group: ProcessGroup;
  /** Where the stage computes (received activations are allocated there). */
  backend: Backend;
  microBatches: number;
  /** [m, T, C] of micro-batch i's activations between stages (every stage can compute it from the data). */
  activationShape(i: number): number[];
  /** The stage's forward of micro-batch i: input is null on the first stage (it reads its own ids). */
  forward(i: number, input: Tensor | null): Tensor;
  /** On the last stage: micro-batch i's scalar loss (its share of the step's loss) from the stage's output. */
  loss(i: number, output: Tensor): Tensor;
}

interface InFlight {
  input: Tensor | null;
  output: Tensor;
  created: Set<Tensor>;
}

/** Runs one step's forwards and backwards (gradients accumulate in .grad); resolves to the micro-batch losses on the last stage, [] elsewhere. */
export async function runOneFOneB(p: PipelineSchedule): Promise<number[]> {
  const { group, microBatches: M } = p;
  const s = group.rank, S = group.world;
  const first = s === 0, last = s === S - 1;
  const pending: Promise<void>[] = [];
  const queue: InFlight[] = [];
  const losses: Tensor[] = [];
  const buffer = (i: number): Tensor => alloc(p.backend, p.activationShape(i), 'f32'); // [m, T, C]

  const receiveInput = (i: number): Tensor | null => {
    if (first) return null;
    const input = buffer(i); // [m, T, C]
    pending.push(group.recv(input, s - 1));
    return input;
  };
  const runForward = (i: number, input: Tensor | null): Tensor => {
    if (input) input.requiresGrad = true; // a leaf: its gradient goes back to the stage before
    const { result, created } = captureScope(() => {
      const out = p.forward(i, input); // [m, T, C], or logits on the last stage
      return last ? p.loss(i, out) : out; // [] on the last stage
    });
    if (last) losses.push(result.detach());
    queue.push({ input, output: result, created });
    return result;
  };
  /** The oldest micro-batch's backward; returns its input's gradient (null on the first stage). */
  const runBackward = (outputGrad: Tensor | null): Tensor | null => {
    const f = queue.shift()!;
    tidy(() => backward(f.output, outputGrad ?? undefined));
    const inputGrad = f.input?.grad ?? null;
    if (f.input) f.input.grad = null; // handed to the caller, who frees it after sending
    dispose([...f.created, f.input, outputGrad]);
    return inputGrad;
  };

  const warmup = Math.min(S - s - 1, M), remaining = M - warmup;
  for (let i = 0; i < warmup; i++) {
    const out = runForward(i, receiveInput(i));
    pending.push(group.send(out, s + 1));
  }
  let input = remaining > 0 ? receiveInput(warmup) : null;
  for (let k = 0; k < remaining; k++) {
    const i = warmup + k;
    const out = runForward(i, input);
    let outputGrad: Tensor | null = null;
    if (!last) {
      outputGrad = buffer(k); // the oldest in flight is micro-batch k
      pending.push(group.sendRecv(out, s + 1, outputGrad, s + 1));
    }
    const inputGrad = runBackward(outputGrad);
    input = null;
    if (!first && inputGrad) {
      if (k === remaining - 1) {
        pending.push(group.send(inputGrad, s - 1));
      } else {
        input = buffer(i + 1);
        pending.push(group.sendRecv(inputGrad, s - 1, input, s - 1));
      }
      inputGrad.dispose(); // the free is queued behind the send
    }
  }
  for (let j = 0; j < warmup; j++) {
    const outputGrad = buffer(remaining + j); // [m, T, C]
    pending.push(group.recv(outputGrad, s + 1));
    const inputGrad = runBackward(outputGrad);
    if (!first && inputGrad) {
      pending.push(group.send(inputGrad, s - 1));
      inputGrad.dispose();
    }
  }
  await Promise.all(pending);
  const values: number[] = [];
  for (const l of losses) {
    values.push(await l.item());
    l.dispose();
  }
  return values;
}
