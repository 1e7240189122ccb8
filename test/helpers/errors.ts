/** The message of the error `fn` throws, checked to be an instance of `type` (a test fails if nothing is thrown). */
import { expect } from 'vitest';

export function thrownMessage(fn: () => unknown, type: abstract new (...args: never[]) => Error): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return (e as Error).message;
  }
  throw new Error(`expected a ${type.name}`);
}
