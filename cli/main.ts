/** The `corral` command: a local cluster and the operator's tools. */
import { parseCommand, UsageError } from './args.ts';
import { batchSpec, runBatch } from './batch-command.ts';
import { exitQuietlyWhenOutputCloses } from './closed-output.ts';
import { generateSpec, runGenerate } from './generate-command.ts';
import { planSpec, runPlanCommand } from './plan-command.ts';
import { runStatus, statusSpec } from './status-command.ts';
import { runUp, upSpec } from './up-command.ts';

const HELP = `corral: serve Llama 3.1 405B and models like it across GPU nodes, on vLLM.

Commands:
  up         start a local cluster on simulated GPUs (controller + workers + engines)
  generate   stream a generation from a model
  status     show workers, engines and deployments
  plan       show how a model can be split over GPUs (tensor x pipeline parallel, memory arithmetic)
  batch      offline batches: submit a JSONL file, follow its progress, fetch its results, cancel it

Run 'corral <command> --help' for a command's flags.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
    return 0;
  }
  const specs = {
    up: upSpec,
    generate: generateSpec,
    status: statusSpec,
    plan: planSpec,
    batch: batchSpec,
  } as const;
  if (rest.includes('--help') && command in specs) {
    process.stdout.write(`usage: ${specs[command as keyof typeof specs].usage}\n`);
    return 0;
  }
  switch (command) {
    case 'plan': {
      const result = runPlanCommand(rest);
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      return result.exitCode;
    }
    case 'up': {
      const { values } = parseCommand(upSpec, rest);
      return runUp(values);
    }
    case 'generate': {
      const { values, positionals } = parseCommand(generateSpec, rest);
      return runGenerate(values, positionals);
    }
    case 'status': {
      const { values } = parseCommand(statusSpec, rest);
      return runStatus(values);
    }
    case 'batch': {
      const { values, positionals } = parseCommand(batchSpec, rest);
      return runBatch(values, positionals);
    }
    default:
      throw new UsageError(`unknown command '${command}'\n\n${HELP}`);
  }
}

exitQuietlyWhenOutputCloses(process.stdout, (code) => process.exit(code));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`corral: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`corral: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
