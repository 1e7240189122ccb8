/**
 * `align generate`: samples from a model in this process (no workers): a folder or store URI, or
 * a run's export. With --attributes the prompt is steered as SteerLM trains it (the label after
 * <extra_id_2> at the start of the assistant turn); with --attribute-model each sample is scored
 * by it, and the label lists the attributes in that model's order.
 */
import { parseLabel, formatLabel, steeredPromptText } from '../algorithms/data/steerlm.js';
import { ConfigError } from '../algorithms/errors.js';
import { modelAttributes } from '../algorithms/pipelines/steerlm.js';
import { loadSequenceClassifier } from '../models/sequence-classification.js';
import { generate } from '../models/generate.js';
import { loadPretrained } from '../models/pretrained.js';
import { renderChat } from '../models/chat.js';
import type { ChatMessage } from '../models/chat.js';
import { Tokenizer } from '../models/tokenizer.js';
import { scoreIds } from '../activities/score.js';
import type { RunStorePort } from '../store/run-store-port.js';

export interface GenerateRequest {
  model: string;
  prompt: string;
  /** `shouting=4,length=2` (or SteerLM's own `shouting:4,length:2`). */
  attributes?: string;
  attributeModel?: string;
  samples?: number;
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
}

export interface GeneratedSample {
  text: string;
  finish: string;
  /** The attribute model's prediction for the sample, by attribute. */
  predicted?: Record<string, number>;
}

export interface GenerateResult {
  model: string;
  label: string | null;
  prompt: string;
  samples: GeneratedSample[];
}

/** `a=4,b=0` or `a:4,b:0` as a SteerLM label, in the attribute model's order when there is one. */
export function labelOf(spec: string, order: readonly string[]): string {
  const values = parseLabel(spec.replace(/=/g, ':'));
  if (order.length === 0) return formatLabel(values);
  const unknown = Object.keys(values).filter((k) => !order.includes(k));
  if (unknown.length) throw new ConfigError(`--attributes names ${unknown.join(', ')}, which the attribute model does not predict (it has: ${order.join(', ')})`);
  const missing = order.filter((k) => !(k in values));
  if (missing.length) throw new ConfigError(`--attributes: give a value for every attribute, in any order (missing: ${missing.join(', ')}); the model was steered with all of ${order.join(', ')}`);
  return formatLabel(values, order);
}

export async function generateSamples(store: RunStorePort, req: GenerateRequest): Promise<GenerateResult> {
  const dir = await store.fetchInput(req.model);
  const amDir = req.attributeModel ? await store.fetchInput(req.attributeModel) : null;
  const order = amDir ? modelAttributes(amDir) : [];
  const label = req.attributes ? labelOf(req.attributes, order) : null;
  const tok = Tokenizer.fromDir(dir);
  const model = await loadPretrained(dir);
  const messages: ChatMessage[] = [{ role: 'user', content: req.prompt }];
  const render = (m: readonly { role: string; content: string }[], g: boolean) => renderChat(tok, m as ChatMessage[], { addGenerationPrompt: g });
  const text = label ? steeredPromptText(render, messages, label) : render(messages, true);
  const ids = tok.encode(text, { addSpecialTokens: false });
  const n = req.samples ?? 1, seed = req.seed ?? 0;
  const eos = tok.eosTokenId;
  try {
    const out = await generate(model, Array.from({ length: n }, () => ids), {
      maxNewTokens: req.maxNewTokens ?? 64, temperature: req.temperature ?? 0.7, topP: req.topP ?? 1,
      seeds: Array.from({ length: n }, (_, i) => seed + i), eosTokenIds: eos === null ? [] : [eos],
    });
    const samples: GeneratedSample[] = out.tokens.map((t, i) => ({ text: tok.decode(t.at(-1) === eos ? t.slice(0, -1) : t).trim(), finish: out.finishReason[i] }));
    if (amDir) {
      const { model: judgeModel, labelNames } = await loadSequenceClassifier(amDir, {});
      const judge = { model: judgeModel, tok: Tokenizer.fromDir(amDir), labelNames };
      try {
        const rows = samples.map((s) => judge.tok.encode(renderChat(judge.tok, [...messages, { role: 'assistant', content: s.text }]), { addSpecialTokens: false }));
        const scores = await scoreIds(judge, rows); // [samples][attributes]
        samples.forEach((s, i) => (s.predicted = Object.fromEntries(labelNames.map((name, k) => [name, scores[i][k]]))));
      } finally {
        judgeModel.dispose();
      }
    }
    return { model: req.model, label, prompt: text, samples };
  } finally {
    model.dispose();
  }
}
