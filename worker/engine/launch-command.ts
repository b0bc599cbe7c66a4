/**
 * The command line of one engine. LaunchEngine.args follow `vllm serve` (the model first, then flags); the
 * worker adds `--host` and, unless the rank is headless (it serves no HTTP), `--port`. The binary is chosen by
 * the worker: the simulator's launcher, `vllm`, or --engine-command; all take the `serve` subcommand, so the
 * same code path runs simulated and real engines.
 */

export interface EngineSpec {
  engineId: string;
  model: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  gpus: number;
  headless: boolean;
  /**
   * A rank of a multi-node group: its peers wait for it inside NCCL collectives, so restarting it alone cannot
   * heal the group. Its exit is reported and final (FAILED); the controller rebuilds the whole group.
   */
  groupMember: boolean;
}

export interface EngineCommand {
  command: string;
  /** Arguments before the engine's own (normally `serve`). */
  prefixArgs: readonly string[];
}

export function engineArgv(
  cmd: EngineCommand,
  spec: EngineSpec,
  host: string,
  port: number | undefined,
): { command: string; args: string[] } {
  const own = [...spec.args];
  // The controller may send only flags; vLLM's first positional argument is the model.
  if (own.length === 0 || own[0]?.startsWith('-')) own.unshift(spec.model);
  const args = [...cmd.prefixArgs, ...own, '--host', host];
  if (port !== undefined) args.push('--port', String(port));
  return { command: cmd.command, args };
}

/** The model name the engine answers to: its --served-model-name if given, else the model it loads. */
export function servedModelName(spec: EngineSpec): string {
  for (let i = 0; i < spec.args.length; i++) {
    const a = spec.args[i] ?? '';
    if (a === '--served-model-name') {
      const v = spec.args[i + 1];
      if (v !== undefined && !v.startsWith('-')) return v;
    } else if (a.startsWith('--served-model-name=')) {
      return a.slice('--served-model-name='.length);
    }
  }
  const first = spec.args[0];
  return first !== undefined && !first.startsWith('-') ? first : spec.model;
}
