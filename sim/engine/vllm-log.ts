/**
 * Start-up lines in vLLM's format (`INFO MM-DD HH:MM:SS [file.py:line] message`) on stdout, so a supervisor that
 * parses a real engine's progress (VLLM.md: model loading, KV cache size, startup complete) parses ours too.
 */
export function vllmLine(
  level: 'INFO' | 'WARNING' | 'ERROR',
  source: string,
  message: string,
  now = new Date(),
): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${p(now.getMonth() + 1)}-${p(now.getDate())} ${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}`;
  return `${level} ${stamp} [${source}] ${message}`;
}

/**
 * Weight bytes per GPU from the parameter count in the model name (`...-405B-...`) and the precision: 2 bytes
 * per parameter in BF16, 1 in FP8, split over TP x PP GPUs. Only for the log line; the default is 8B.
 */
export function weightGiBPerGpu(model: string, fp8: boolean, gpus: number): number {
  const m = /(\d+(?:\.\d+)?)[bB](?![a-zA-Z])/.exec(model);
  const params = (m ? Number.parseFloat(m[1] ?? '8') : 8) * 1e9;
  return (params * (fp8 ? 1 : 2)) / gpus / 1024 ** 3;
}
