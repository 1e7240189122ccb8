/**
 * Advantages of the online recipes, on plain per-row arrays (one entry per response token, or one
 * per sample): the reward shaping and estimators of NeMo-Aligner's PPO and REINFORCE, GRPO's group
 * normalisation, and rejection sampling's selection. Pure and in f64: the activities store the
 * results in the rollout ledger, and tests check them against hand-computed numbers.
 */

/**
 * PPO's per-token reward (Ouyang et al. 2022, eq. 2; Stiennon et al. 2020, eq. 1): the KL penalty
 * −β·KL_t at every response token and the sequence reward R added at the last one,
 *   r_t = R·1[t = T−1] − β·KL_t,  KL_t = |ℓ_old(t) − ℓ_ref(t)| (absolute, NeMo-Aligner's default) or ℓ_old(t) − ℓ_ref(t).
 * NeMo-Aligner places R at the last valid action (its `response_len − 2` in full-sequence indexing).
 */
export function tokenRewards(reward: number, old: readonly number[], ref: readonly number[], beta: number, absolute: boolean): number[] {
  if (old.length !== ref.length) throw new RangeError(`tokenRewards: ${old.length} old log-probs but ${ref.length} reference log-probs`);
  const r = old.map((o, t) => -beta * (absolute ? Math.abs(o - ref[t]) : o - ref[t]));
  if (r.length > 0) r[r.length - 1] += reward;
  return r;
}

/** KL_t of one response, as tokenRewards penalises it. */
export function tokenKl(old: readonly number[], ref: readonly number[], absolute: boolean): number[] {
  return old.map((o, t) => (absolute ? Math.abs(o - ref[t]) : o - ref[t]));
}

/**
 * Generalised advantage estimation (Schulman et al. 2016, eq. 16) over one response:
 *   δ_t = r_t + γ·V_{t+1} − V_t (V = 0 past the end),  A_t = δ_t + γλ·A_{t+1},  Ret_t = A_t + V_t.
 */
export function gae(rewards: readonly number[], values: readonly number[], gamma: number, lambda: number): { advantages: number[]; returns: number[] } {
  const T = rewards.length;
  if (values.length !== T) throw new RangeError(`gae: ${T} rewards but ${values.length} values`);
  const advantages = new Array<number>(T).fill(0);
  let next = 0, nextValue = 0;
  for (let t = T - 1; t >= 0; t--) {
    const delta = rewards[t] + gamma * nextValue - values[t];
    next = delta + gamma * lambda * next;
    advantages[t] = next;
    nextValue = values[t];
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]) };
}

/**
 * Whitening over every token of a rollout batch (NeMo-Aligner `normalize_advantages`): (A − μ)/√(σ² + 1e-8)
 * with the population mean and variance of the tokens whose mask is 1. Rows with mask 0 are left as they are.
 */
export function whiten(rows: readonly (readonly number[])[], use: readonly boolean[]): number[][] {
  let n = 0, s = 0;
  rows.forEach((r, i) => { if (use[i]) for (const a of r) { s += a; n++; } });
  if (n === 0) return rows.map((r) => [...r]);
  const mu = s / n;
  let v = 0;
  rows.forEach((r, i) => { if (use[i]) for (const a of r) v += (a - mu) ** 2; });
  const scale = 1 / Math.sqrt(v / n + 1e-8);
  return rows.map((r, i) => (use[i] ? r.map((a) => (a - mu) * scale) : [...r]));
}

/** Rows of a rollout batch grouped by prompt: group g lists the indices of prompt g's samples. */
export function groupsOf(promptOf: readonly number[]): number[][] {
  const byPrompt = new Map<number, number[]>();
  promptOf.forEach((p, i) => {
    const g = byPrompt.get(p);
    if (g) g.push(i);
    else byPrompt.set(p, [i]);
  });
  return [...byPrompt.values()];
}

/**
 * The REINFORCE leave-one-out baseline (Ahmadian et al. 2024, RLOO, eq. 6; NeMo-Aligner
 * `calculate_rloo_baseline`): per prompt, b_i = Σ_{j≠i} r_j·e_j / (Σ_j e_j − 1) over the samples
 * that ended (e = 1). With at most one ended sample, b_i = r_i (zero advantage).
 */
export function rlooBaselines(rewards: readonly number[], ended: readonly boolean[], promptOf: readonly number[]): number[] {
  const b = [...rewards];
  for (const g of groupsOf(promptOf)) {
    const endedCount = g.filter((i) => ended[i]).length;
    if (endedCount <= 1) continue;
    const total = g.reduce((s, i) => s + (ended[i] ? rewards[i] : 0), 0);
    for (const i of g) b[i] = (total - (ended[i] ? rewards[i] : 0)) / (endedCount - 1);
  }
  return b;
}

/**
 * GRPO's group-normalised advantage (Shao et al. 2024, DeepSeekMath, §4.1.2): per prompt,
 * A_i = (r_i − mean_g r)/(std_g r + ε), std with Bessel's correction as TRL computes it, ε = 1e-4.
 * A group of one sample has advantage 0.
 */
export function groupNormalized(rewards: readonly number[], promptOf: readonly number[], eps = 1e-4): number[] {
  const a = new Array<number>(rewards.length).fill(0);
  for (const g of groupsOf(promptOf)) {
    if (g.length < 2) continue;
    const mu = g.reduce((s, i) => s + rewards[i], 0) / g.length;
    const sd = Math.sqrt(g.reduce((s, i) => s + (rewards[i] - mu) ** 2, 0) / (g.length - 1));
    for (const i of g) a[i] = (rewards[i] - mu) / (sd + eps);
  }
  return a;
}

/** Rejection sampling's selection (NeMo-Aligner `select_topk`): per prompt, the k best rewards (ties: the earlier sample). */
export function topKPerPrompt(rewards: readonly number[], promptOf: readonly number[], k: number): boolean[] {
  const keep = new Array<boolean>(rewards.length).fill(false);
  for (const g of groupsOf(promptOf)) {
    [...g].sort((i, j) => rewards[j] - rewards[i] || i - j).slice(0, k).forEach((i) => (keep[i] = true));
  }
  return keep;
}

/** The mean of xs (0 for none). */
export const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);

/** Explained variance of values against returns, 1 − Var(Ret − V)/Var(Ret) (a critic diagnostic; NaN when Var(Ret) = 0). */
export function explainedVariance(values: readonly number[], returns: readonly number[]): number {
  const n = returns.length;
  if (n === 0) return NaN;
  const varOf = (xs: readonly number[]) => { const m = mean(xs); return mean(xs.map((x) => (x - m) ** 2)); };
  const vr = varOf(returns);
  return vr === 0 ? NaN : 1 - varOf(returns.map((r, i) => r - values[i])) / vr;
}

/**
 * The adaptive KL controller (Ziegler et al. 2019, §2.2): β ← β·(1 + clip((KL − target)/target, ±0.2)·n/horizon)
 * after each batch of n samples. Its β is part of the run's checkpointed state.
 */
export function adaptKl(beta: number, kl: number, target: number, horizon: number, samples: number): number {
  const error = Math.max(-0.2, Math.min(0.2, kl / target - 1));
  return beta * (1 + error * samples / horizon);
}
