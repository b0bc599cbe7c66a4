/** Reads the deployments file: YAML (a superset of JSON, so `.json` files parse too), then compiles it. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ValidationError } from '../../common/errors.ts';
import { type ControllerConfig, compileControllerConfig } from './controller-config.ts';

export function parseControllerConfig(text: string, source: string): ControllerConfig {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    const message = e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e);
    throw new ValidationError(`controller config ${source}`, [
      { path: '(file)', message: `not valid YAML/JSON: ${message}` },
    ]);
  }
  return compileControllerConfig(doc);
}

export function loadControllerConfig(path: string): ControllerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ValidationError('controller config', [
      { path: '(file)', message: `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}` },
    ]);
  }
  return parseControllerConfig(text, path);
}
