/** A pipeline's example config as YAML (what `align pipeline config <name>` prints and examples/pipelines/ holds). */
import { stringify } from 'yaml';
import type { PipelineDef } from './types.js';

export function pipelineExampleYaml(p: PipelineDef<Record<string, unknown>>): string {
  const stages = p.stages(p.schema.parse(p.example) as Record<string, unknown>);
  const notes = p.exampleNotes ? p.exampleNotes.map((n) => `# ${n}\n`).join('') : '';
  return `# ${p.name}: ${p.summary}\n# stages: ${stages.join(' → ')}\n${notes}${stringify(p.example)}`;
}
