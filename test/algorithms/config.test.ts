/** Recipe configs: defaults, strict keys, range checks and --set overrides, with exact messages. */
import { describe, expect, it } from 'vitest';
import { applyOverrides } from '../../algorithms/config/common.js';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { ConfigError } from '../../algorithms/errors.js';
import type { DpoConfig } from '../../algorithms/recipes/dpo.js';

const base = { model: 'models/fixtures/tiny-llama', data: { train: 'train.jsonl' } };

describe('recipe configs', () => {
  it('fills documented defaults', () => {
    const c = parseRecipeConfig('dpo', base) as DpoConfig;
    expect(c.dpo).toEqual({ beta: 0.2, loss: 'dpo', sftWeight: 0, averageLogProbs: false, gtRewardScale: 1 });
    expect(c.trainer.globalBatchSize).toBe(8);
    expect(c.seed).toBe(0);
  });

  it('rejects unknown keys and bad values, naming every field', () => {
    expect(() => parseRecipeConfig('sft', { ...base, trainer: { lr: -1, maxStep: 3 } })).toThrow(ConfigError);
    let message = '';
    try {
      parseRecipeConfig('sft', { ...base, trainer: { lr: -1, maxStep: 3 } });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('invalid sft config:');
    expect(message).toContain('trainer: unknown key(s) "maxStep"');
    expect(message).toMatch(/trainer\.lr: .*0/);
  });

  it('cross-field checks are actionable', () => {
    expect(() => parseRecipeConfig('sft', { ...base, trainer: { globalBatchSize: 6, microBatchSize: 4 } })).toThrow(
      new ConfigError('trainer.globalBatchSize (6) must be a multiple of trainer.microBatchSize (4)'),
    );
    expect(() => parseRecipeConfig('dpo', { ...base, dpo: { loss: 'hinge' } })).toThrow(/dpo\.loss: /);
    const trainer = { globalBatchSize: 8, microBatchSize: 4 };
    expect(() => parseRecipeConfig('sft', { ...base, trainer, parallel: { dp: 4 } })).toThrow(
      new ConfigError('trainer.globalBatchSize (8) must be a multiple of parallel.dp × trainer.microBatchSize (4 × 4)'),
    );
    expect(() => parseRecipeConfig('dpo', { ...base, trainer, parallel: { pp: 2 } })).toThrow('parallel.pp > 1 trains sft only for now; dpo needs parallel.pp: 1');
    expect(() => parseRecipeConfig('rm', { ...base, trainer, parallel: { tp: 2 } })).toThrow('parallel.tp and parallel.pp split causal LMs; rm trains a classifier (use parallel.dp)');
    expect(() => parseRecipeConfig('kd', { ...base, trainer, parallel: { tp: 2 }, kd: { teacher: 'models/fixtures/tiny-llama' } })).toThrow("parallel.tp > 1: kd needs the whole vocabulary's logits on one rank; use parallel.dp");
    expect(() => parseRecipeConfig('sft', { ...base, trainer, parallel: { dp: 2 }, lora: {} })).toThrow('parallel: LoRA runs train on one worker for now; remove the parallel section or lora');
    expect(() => parseRecipeConfig('sft', { ...base, trainer, parallel: { dp: 8, tp: 9 } })).toThrow('parallel: dp × tp × pp = 72 ranks; at most 64');
    // An online recipe lays out its roles, not a gang: the offline keys are unknown there, and the other way round.
    const grpo = { ...base, reward: { function: 'reward.ts' } };
    expect(() => parseRecipeConfig('grpo', { ...grpo, parallel: { dp: 2 } })).toThrow('parallel: unknown key(s) "dp"');
    expect(() => parseRecipeConfig('sft', { ...base, parallel: { rollout: { dp: 2 } } })).toThrow('parallel: unknown key(s) "rollout"');
    expect(() => parseRecipeConfig('grpo', { ...grpo, parallel: { rollout: { dp: 65 } } })).toThrow(/parallel\.rollout\.dp: .*64/);
    expect(parseRecipeConfig('grpo', { ...grpo, parallel: { rollout: { dp: 2 } } }).parallel).toEqual({ actor: { dp: 1 }, rollout: { dp: 2 }, reward: { dp: 1 } });
    expect(() => parseRecipeConfig('grpo', { ...grpo, parallel: { actor: { dp: 2 } } })).toThrow("parallel.actor.dp (2) trains on the actor's worker and its rollout replicas; set parallel.rollout.dp to at least 2");
    expect(() => parseRecipeConfig('grpo', { ...grpo, trainer: { globalBatchSize: 8, microBatchSize: 8 }, parallel: { actor: { dp: 2 }, rollout: { dp: 2 } } })).toThrow(
      'trainer.globalBatchSize (8) must be a multiple of parallel.actor.dp × trainer.microBatchSize (2 × 8)',
    );
    expect(() => parseRecipeConfig('grpo', { ...grpo, trainer, lora: {}, parallel: { actor: { dp: 2 }, rollout: { dp: 2 } } })).toThrow('parallel.actor.dp: LoRA actors train on one worker for now');
    expect(parseRecipeConfig('sft', { ...base, trainer, parallel: { dp: 2, tp: 2 } }).parallel).toEqual({ dp: 2, tp: 2, pp: 1, shardOptimizer: false });
    expect(() => parseRecipeConfig('spin', base)).toThrow('unknown recipe "spin"; available: sft, dpo, rm, kd, kto, steerlm2, ppo, reinforce, grpo, rs (align recipes lists them)');
  });

  it('--set overrides parse JSON values and create sections', () => {
    const c = applyOverrides(base, ['dpo.beta=0.1', 'trainer.maxSteps=30', 'dpo.averageLogProbs=true', 'data.validation=v.jsonl']);
    const parsed = parseRecipeConfig('dpo', c) as DpoConfig;
    expect(parsed.dpo.beta).toBe(0.1);
    expect(parsed.dpo.averageLogProbs).toBe(true);
    expect(parsed.trainer.maxSteps).toBe(30);
    expect(parsed.data.validation).toBe('v.jsonl');
    expect(() => applyOverrides(base, ['beta'])).toThrow('--set expects key=value, got "beta"');
    expect(() => applyOverrides(base, ['model.x=1'])).toThrow('--set model.x=1: "model" is not a section');
  });
});
