/**
 * What a use*() test helper started in its beforeAll, read through a getter: `value`, or an error saying the
 * test read it too early (at module level, before the hooks ran).
 */
export function startedInHook<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} starts in beforeAll, so read it inside a hook or a test`);
  return value;
}
