/**
 * Reading a run config file: YAML (`.yaml`, `.yml`) or JSON (`.json`). Any other extension is
 * read as YAML, which also accepts JSON. Errors name the file (and the line for syntax errors)
 * and are ConfigErrors, so the CLI reports them as bad input (exit 2).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../../algorithms/errors.js';

export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  const abs = path.resolve(file);
  const text = await readFile(abs, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(e.code === 'ENOENT' ? `config file not found: ${abs}` : `cannot read config file ${abs}: ${e.message}`);
  });
  let raw: unknown;
  if (path.extname(abs).toLowerCase() === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${abs}: invalid JSON: ${(e as Error).message}`);
    }
  } else {
    try {
      raw = parseYaml(text);
    } catch (e) {
      if (!(e instanceof YAMLParseError)) throw e;
      const where = e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}: ` : '';
      throw new ConfigError(`${abs}: invalid YAML: ${where}${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
    }
  }
  if (raw === null || raw === undefined) return {}; // an empty file: everything from --set
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${abs}: a config file must hold a mapping of keys to values, not ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  return raw as Record<string, unknown>;
}
