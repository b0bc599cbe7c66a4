/**
 * Reads a request body (as JSON, or raw bytes) with a size limit. The limit is checked against Content-Length
 * before reading and against the bytes as they arrive (a chunked body has no length), so an oversized body costs
 * at most `maxBytes` of memory and is a 413 rather than an out-of-memory.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-errors.ts';

export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const text = (await readBody(req, maxBytes)).toString('utf8');
  if (text.trim() === '')
    throw new HttpError(400, 'The request body is empty; expected a JSON object.', null);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new HttpError(400, `We could not parse the JSON body of your request (${why}).`, null);
  }
}

/** The body's bytes, at most `maxBytes` of them (413 past that). */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(413, `Request body is larger than the limit of ${maxBytes} bytes.`, null);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
