/**
 * The three priority classes of a deployment's queue, highest first. Interactive is for people waiting on a
 * stream, standard for services, batch for offline work that should fill idle capacity (issue 5, part 7).
 */
export const PRIORITY_CLASSES = ['interactive', 'standard', 'batch'] as const;
export type PriorityClass = (typeof PRIORITY_CLASSES)[number];

export function isPriorityClass(v: unknown): v is PriorityClass {
  return typeof v === 'string' && (PRIORITY_CLASSES as readonly string[]).includes(v);
}

/** 0 = interactive (highest) .. 2 = batch. */
export function classRank(c: PriorityClass): number {
  return PRIORITY_CLASSES.indexOf(c);
}
