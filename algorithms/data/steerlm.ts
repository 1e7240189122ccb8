/**
 * SteerLM's attribute labels (Dong et al. 2023, SteerLM: Attribute Conditioned SFT as an
 * (User-Steerable) Alternative to RLHF, §3). A label is the string NeMo-Aligner writes,
 * `quality:4,toxicity:0,humor:0` (`",".join(f"{k}:{v}")`), and it conditions the response: it sits
 * at the start of the assistant turn after NeMo-Aligner's label marker `<extra_id_2>`, followed by
 * a newline, and it belongs to the prompt (never trained). Models here use their own chat
 * template, so the marker and label are written as text at the start of the assistant turn.
 */

/** NeMo-Aligner's chat_prompt_tokens.label_start. */
export const LABEL_START = '<extra_id_2>';

/** Attribute values by name, in the attribute model's order. */
export type Attributes = Record<string, number>;

/** `quality:4,toxicity:0`: the names in `order` (default the object's own), values rounded as NeMo-Aligner's annotation does. */
export function formatLabel(values: Attributes, order: readonly string[] = Object.keys(values)): string {
  return order.map((k) => {
    const v = values[k];
    if (v === undefined) throw new Error(`attribute "${k}" has no value`);
    return `${k}:${Number.isInteger(v) ? v : Math.round(v)}`;
  }).join(',');
}

/** `quality:4,toxicity:0` → {quality: 4, toxicity: 0}; a malformed label is an error naming it. */
export function parseLabel(label: string): Attributes {
  const out: Attributes = {};
  for (const part of label.split(',')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(-?\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new Error(`attribute label ${JSON.stringify(label)}: "${part}" is not name:value (e.g. quality:4,toxicity:0)`);
    if (m[1] in out) throw new Error(`attribute label ${JSON.stringify(label)} names "${m[1]}" twice`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * A label's attributes checked against the attribute model's names: every name must be one the
 * model predicts (a record of another model's attributes is an error, not silently ignored).
 */
export function checkLabelAttributes(label: string, modelAttributes: readonly string[]): Attributes {
  const values = parseLabel(label);
  const unknown = Object.keys(values).filter((k) => !modelAttributes.includes(k));
  if (unknown.length > 0) {
    throw new Error(`attribute label ${JSON.stringify(label)} names ${unknown.map((k) => `"${k}"`).join(', ')}, which the attribute model does not predict (it has: ${modelAttributes.join(', ')})`);
  }
  return values;
}

/** The text that opens a steered assistant turn: the marker, the label, a newline. */
export const labelPrefix = (label: string): string => `${LABEL_START}${label}\n`;

/** A steered turn's content: the label prefix, then the response (what a SteerLM model is trained on). */
export const steeredContent = (label: string, response: string): string => `${labelPrefix(label)}${response}`;

/**
 * The prompt text a steered response continues: the conversation with the generation prompt,
 * then the label prefix. Rendering the label as part of the assistant turn (steeredContent) and
 * cutting before the response gives this same text, so sampling and training agree.
 */
export function steeredPromptText(render: (messages: readonly { role: string; content: string }[], addGenerationPrompt: boolean) => string, messages: readonly { role: string; content: string }[], label: string): string {
  return render(messages, true) + labelPrefix(label);
}
