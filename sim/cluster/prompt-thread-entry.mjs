// The prompt thread's entry (prompt-thread.ts): a worker thread does not inherit the parent's TypeScript loader
// (in Node 20 neither `--import tsx` in execArgv nor the parent's registration reaches it), so it registers tsx
// itself before loading the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./prompt-thread-worker.ts');
