/**
 * Learning-rate schedule: linear warmup to `lr`, then cosine decay to `minLr` at `totalSteps`
 * (Loshchilov & Hutter 2017, eq. 5, without restarts), constant at minLr after it.
 */
export interface CosineSchedule {
  lr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** The learning rate for optimizer step `step` (0-based). */
export function lrAt(step: number, s: CosineSchedule): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
