/** The models a recipe trains: a causal LM (SFT, DPO, KD, KTO) or a sequence classifier (reward models). */
import type { CausalLM } from '../../models/causal-lm.js';
import { SequenceScoreModel } from '../../models/heads.js';

export type TrainableModel = CausalLM | SequenceScoreModel;

export const isClassifier = (m: TrainableModel): m is SequenceScoreModel => m instanceof SequenceScoreModel;

export function asCausalLM(m: TrainableModel): CausalLM {
  if (isClassifier(m)) throw new TypeError('this recipe trains a causal LM, but the resident model is a sequence classifier');
  return m;
}

export function asClassifier(m: TrainableModel): SequenceScoreModel {
  if (!isClassifier(m)) throw new TypeError('this recipe trains a sequence classifier (reward model), but the resident model is a causal LM');
  return m;
}
