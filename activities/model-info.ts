/** What preparation needs to know of a model folder without loading its weights. */
import { fromHfConfig } from '../models/config.js';
import type { ModelConfig } from '../models/config.js';
import { readConfig } from '../models/hf/checkpoint.js';

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  return fromHfConfig(await readConfig(dir));
}

/** Longest sequence the model's positions cover (max_position_embeddings, n_positions for GPT-2). */
export const contextWindowOf = (c: ModelConfig): number => (c.family === 'gpt2' ? c.nPositions : c.maxPositionEmbeddings ?? 2048);
