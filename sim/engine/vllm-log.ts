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
